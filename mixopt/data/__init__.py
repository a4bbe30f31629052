"""Data layer: sources, tokenizer, token shards, mixture sampler, demo corpus."""
