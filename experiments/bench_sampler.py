"""Benchmark: MixtureSampler vs datasets.interleave_datasets, and tokenizer encode throughput.

Both samplers serve the same tokenized demo corpus as fixed-length (T+1)-token sequences with the same
weights; the baseline is the usual Hugging Face recipe (per-domain datasets of chunked sequences, mixed
by ``interleave_datasets(probabilities=..., seed=..., stopping_strategy=...)`` and read in batches).
Throughput counts B*T tokens per batch for both. Run:

    python experiments/bench_sampler.py [--corpus DIR] [--batches 2000] [--batch-size 16] [--seq-len 128]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _prepare(corpus: Path | None):
    from mixopt.config import load_job_config
    from mixopt.data import build_demo_corpus, prepare_data

    if corpus is None:
        corpus = Path(tempfile.mkdtemp(prefix="bench_sampler_"))
        build_demo_corpus(corpus, seed=0)
    return corpus, prepare_data(load_job_config(corpus / "job.yaml"), progress=False)


def bench_mixture_sampler(data, weights, T, B, n_batches):
    from mixopt.data import MixtureSampler

    s = MixtureSampler(data, weights, seq_len=T, batch_size=B, seed=0)
    s.next_batch()  # warm the page cache
    t0 = time.perf_counter()
    for _ in range(n_batches):
        tokens, dom = s.next_batch()
    dt = time.perf_counter() - t0
    return n_batches * B * T / dt


def _domain_datasets(data, T):
    import datasets

    out = []
    for d in data.domains:
        arr = np.asarray(data.train[d], dtype=np.int64)
        n = len(arr) // (T + 1)
        rows = arr[: n * (T + 1)].reshape(n, T + 1)
        out.append(datasets.Dataset.from_dict({"input_ids": rows.tolist()}).with_format("numpy"))
    return out


def bench_interleave(data, weights, T, B, n_batches, iterable: bool):
    """Return (tokens/s over iteration only, seconds to chunk the tokens into Datasets and interleave them)."""
    import datasets

    t0 = time.perf_counter()
    parts = _domain_datasets(data, T)
    chunk = time.perf_counter() - t0
    if iterable:
        parts = [p.to_iterable_dataset() for p in parts]
    t0 = time.perf_counter()
    mixed = datasets.interleave_datasets(parts, probabilities=list(weights), seed=0,
                                         stopping_strategy="all_exhausted")
    build = time.perf_counter() - t0 + chunk
    got = 0
    t0 = time.perf_counter()
    for batch in mixed.iter(batch_size=B):
        np.asarray(batch["input_ids"])
        got += 1
        if got >= n_batches:
            break
    dt = time.perf_counter() - t0
    return got * B * T / dt, build


def bench_tokenizer(data, corpus: Path):
    from mixopt.config import load_job_config
    from mixopt.data import read_documents

    cfg = load_job_config(corpus / "job.yaml")
    docs = [t for n, s in cfg.domains.items() for t in read_documents(n, s)]
    tok = data.tokenizer
    t0 = time.perf_counter()
    n_batch = sum(len(e.ids) for e in tok.encode_batch_fast(docs, add_special_tokens=False))
    batch_tps = n_batch / (time.perf_counter() - t0)
    sub = docs[: len(docs) // 4]
    t0 = time.perf_counter()
    n_single = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in sub)
    single_tps = n_single / (time.perf_counter() - t0)
    return batch_tps, single_tps, sum(len(d.encode()) for d in docs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=None, help="demo corpus dir (default: build one in /tmp)")
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per sampler")
    args = ap.parse_args()
    corpus, data = _prepare(args.corpus)
    T, B, n = args.seq_len, args.batch_size, args.batches
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.full(len(data.domains), 4.0))  # no near-zero weights (all_exhausted)
    print(f"corpus {corpus}: {len(data.domains)} domains, {int(data.train_tokens().sum()):,} train tokens, "
          f"vocab {data.vocab_size}, cpus {os.cpu_count()}")
    print(f"weights {np.round(weights, 3).tolist()}  T={T} B={B} batches={n}")
    # best of --repeat runs each, interleaved, so a busy machine penalises both sides alike
    ours = base_map = base_it = 0.0
    build_map = float("inf")
    for _ in range(args.repeat):
        ours = max(ours, bench_mixture_sampler(data, weights, T, B, n))
        tps, build = bench_interleave(data, weights, T, B, n, iterable=False)
        base_map, build_map = max(base_map, tps), min(build_map, build)
        base_it = max(base_it, bench_interleave(data, weights, T, B, n, iterable=True)[0])
    print(f"MixtureSampler                          {ours:>14,.0f} tokens/s")
    print(f"interleave_datasets (Dataset, numpy)    {base_map:>14,.0f} tokens/s   ratio {ours / base_map:6.1f}x"
          f"   (+{build_map:.2f}s to build the datasets, not counted)")
    print(f"interleave_datasets (IterableDataset)   {base_it:>14,.0f} tokens/s   ratio {ours / base_it:6.1f}x")
    batch_tps, single_tps, n_bytes = bench_tokenizer(data, corpus)
    print(f"tokenizer encode_batch_fast             {batch_tps:>14,.0f} tokens/s   "
          f"({batch_tps / single_tps:.1f}x per-document encode: {single_tps:,.0f} tokens/s; {n_bytes / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
