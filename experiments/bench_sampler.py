"""Benchmark: MixtureSampler vs datasets.interleave_datasets, and tokenizer encode throughput.

Both samplers serve the same tokenized demo corpus as fixed-length (T+1)-token sequences with the same
weights; the baseline is the usual Hugging Face recipe (per-domain datasets of chunked sequences, mixed
by ``interleave_datasets(probabilities=..., seed=..., stopping_strategy=...)`` and read in batches).
Both hand the training loop the same output: a LongTensor ``(B, T+1)`` of tokens and a LongTensor ``(B,)``
of domain ids (the baseline's datasets carry a ``domain`` column for it). The baseline without the domain
column (tokens only, as numpy, the figure logged before 2026-12-02) is printed beside it. Throughput counts
B*T tokens per batch for all. Every shape is measured in the same run, best of ``--repeat`` runs each,
the samplers interleaved so that a busy machine penalises all alike. Run:

    python experiments/bench_sampler.py [--corpus DIR] [--shapes 16x128:2000 64x512:500] [--repeat 3]

(``BxT:batches``.) Wall times: the machine may be shared; the ratios are measured back to back.
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


def _domain_datasets(data, T, with_domain: bool):
    import datasets

    out = []
    for i, d in enumerate(data.domains):
        arr = np.asarray(data.train[d], dtype=np.int64)
        n = len(arr) // (T + 1)
        rows = arr[: n * (T + 1)].reshape(n, T + 1)
        cols = {"input_ids": rows.tolist()} | ({"domain": [i] * n} if with_domain else {})
        out.append(datasets.Dataset.from_dict(cols).with_format("numpy"))
    return out


def bench_interleave(data, weights, T, B, n_batches, iterable: bool, with_domain: bool = True):
    """Return (tokens/s over iteration only, seconds to chunk the tokens into Datasets and interleave them).

    with_domain: serve what MixtureSampler serves (token and domain-id LongTensors); else tokens as numpy."""
    import datasets
    import torch

    t0 = time.perf_counter()
    parts = _domain_datasets(data, T, with_domain)
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
        if with_domain:
            torch.from_numpy(np.asarray(batch["input_ids"])), torch.from_numpy(np.asarray(batch["domain"]))
        else:
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


def bench_shape(data, weights, B: int, T: int, n: int, repeat: int) -> dict:
    """Best-of-``repeat`` tokens/s of each sampler at one shape, interleaved."""
    best = {"ours": 0.0, "same_output": 0.0, "tokens_only": 0.0, "iterable": 0.0}
    build = float("inf")
    for _ in range(repeat):
        best["ours"] = max(best["ours"], bench_mixture_sampler(data, weights, T, B, n))
        tps, b = bench_interleave(data, weights, T, B, n, iterable=False, with_domain=True)
        best["same_output"], build = max(best["same_output"], tps), min(build, b)
        best["tokens_only"] = max(best["tokens_only"],
                                  bench_interleave(data, weights, T, B, n, iterable=False, with_domain=False)[0])
        best["iterable"] = max(best["iterable"], bench_interleave(data, weights, T, B, n, iterable=True)[0])
    ours = best["ours"]
    print(f"B={B} T={T} batches={n}")
    print(f"  MixtureSampler                                 {ours:>14,.0f} tokens/s")
    print(f"  interleave_datasets (Dataset, same output)     {best['same_output']:>14,.0f} tokens/s   ratio "
          f"{ours / best['same_output']:6.1f}x   (+{build:.2f}s to build the datasets, not counted)")
    print(f"  interleave_datasets (Dataset, tokens only)     {best['tokens_only']:>14,.0f} tokens/s   ratio "
          f"{ours / best['tokens_only']:6.1f}x")
    print(f"  interleave_datasets (IterableDataset, same)    {best['iterable']:>14,.0f} tokens/s   ratio "
          f"{ours / best['iterable']:6.1f}x", flush=True)
    return best | {"ratio": ours / best["same_output"], "ratio_tokens_only": ours / best["tokens_only"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=None, help="demo corpus dir (default: build one in /tmp)")
    ap.add_argument("--shapes", nargs="+", default=["16x128:2000", "64x512:500"], help="BxT:batches each")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per sampler")
    ap.add_argument("--no-tokenizer", action="store_true", help="skip the tokenizer throughput figure")
    args = ap.parse_args()
    corpus, data = _prepare(args.corpus)
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.full(len(data.domains), 4.0))  # no near-zero weights (all_exhausted)
    print(f"corpus {corpus}: {len(data.domains)} domains, {int(data.train_tokens().sum()):,} train tokens, "
          f"vocab {data.vocab_size}, cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print(f"weights {np.round(weights, 3).tolist()}")
    for shape in args.shapes:
        bt, n = shape.split(":")
        B, T = (int(x) for x in bt.split("x"))
        bench_shape(data, weights, B, T, int(n), args.repeat)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if not args.no_tokenizer:
        batch_tps, single_tps, n_bytes = bench_tokenizer(data, corpus)
        print(f"tokenizer encode_batch_fast             {batch_tps:>14,.0f} tokens/s   ({batch_tps / single_tps:.1f}x "
              f"per-document encode: {single_tps:,.0f} tokens/s; {n_bytes / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
