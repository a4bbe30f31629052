"""Small in-memory token domains behind the real data-layer `PreparedData` / `MixtureSampler`."""

from __future__ import annotations

import numpy as np
import pytest

VOCAB = 64


def make_tiny_data(tmp_path, n_tokens: int = 20_000, seed: int = 0):
    """Three domains over a 64-token vocabulary: a learnable cycle, a learnable 2-gram chain, pure noise."""
    from mixopt.data import PreparedData

    rng = np.random.default_rng(seed)
    cycle = np.tile(np.arange(1, 17, dtype=np.uint16), n_tokens // 16 + 1)[:n_tokens]
    nxt = rng.integers(17, 33, size=64)
    chain = np.empty(n_tokens, dtype=np.uint16)
    chain[0] = 17
    for i in range(1, n_tokens):
        chain[i] = nxt[chain[i - 1]] if rng.random() < 0.9 else rng.integers(17, 33)
    noise = rng.integers(33, VOCAB, size=n_tokens).astype(np.uint16)
    train = {"cycle": cycle, "chain": chain, "noise": noise}
    val = {d: a[: n_tokens // 10].copy() for d, a in train.items()}
    return PreparedData(data_dir=tmp_path, domains=list(train), vocab_size=VOCAB, train=train, val=val,
                        tokenizer_path=tmp_path / "tokenizer.json")


@pytest.fixture
def tiny_data(tmp_path):
    return make_tiny_data(tmp_path)
