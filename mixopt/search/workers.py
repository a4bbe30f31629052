"""The Ray task that trains one proxy.

The prepared data travels by *path*: each worker process opens ``load_prepared(data_dir)`` once (token
memmaps, cached per process) instead of receiving arrays through the object store. The task returns the
``RunRecord`` as a plain dict; training failures come back as ``status="failed"`` records, while a crash
of the worker process surfaces in the driver as a Ray error (both are retried by the loop).

The ``train_fn`` seam takes ``proxies.train_proxy``'s signature
``(config, data, weights, *, tokens, seed, settings, threads) -> RunRecord`` (or a dict); tests use it to
inject failures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ProxyTask", "proxy_flops", "proxy_slots", "record_failure", "run_proxy",
           "run_seed", "train_settings", "warm_worker"]

_DATA_CACHE: dict[str, Any] = {}


def _load(data_dir: str):
    from mixopt.data import load_prepared

    key = str(Path(data_dir).resolve())
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one workspace per worker at a time; memmaps are cheap to reopen
        _DATA_CACHE[key] = load_prepared(key)
    return _DATA_CACHE[key]


def train_settings(cfg) -> dict[str, Any]:
    """``proxies.TrainSettings`` (as a plain dict) from the ``cfg.proxy`` section and ``cfg.evals``."""
    from mixopt.proxies import TrainSettings

    evals = tuple(t.model_dump() for t in getattr(cfg, "evals", []))
    return TrainSettings.from_job(cfg.proxy, evals=evals).to_dict()


def proxy_flops(preset: str, vocab_size: int, tokens: int, seq_len: int | None = None) -> float:
    """Training FLOPs of one proxy run (``flops_per_token(seq_len) * tokens``)."""
    from mixopt.proxies import ProxyConfig

    return float(ProxyConfig.preset(preset).with_vocab(vocab_size).flops_per_token(seq_len)) * float(tokens)


def record_failure(rec: dict, metrics: Sequence[str] = ()) -> str | None:
    """Why a returned record counts as failed (status failed, a non-finite final loss, or no value for one
    of the eval ``metrics`` the objective needs), else None."""
    if rec.get("status") != "ok":
        return str(rec.get("reason") or f"status {rec.get('status')!r}")
    bad = [d for d, v in (rec.get("final_loss") or {}).items() if v is None or not math.isfinite(float(v))]
    if bad or not rec.get("final_loss"):
        return f"non-finite final loss on {bad or 'every domain'}"
    got = rec.get("metrics") or {}
    missing = [m for m in metrics if m not in got]
    if missing:
        return f"no eval metric {missing} in the run's record (named by search.objective; the task recorded {sorted(got)})"
    return None


def run_proxy(
    data_dir: str,
    preset: str,
    weights: dict[str, float],
    tokens: int,
    seed: int,
    settings: dict[str, Any],
    threads: int,
    device: str = "cpu",
    train_fn: Callable | None = None,
) -> dict:
    """Train one proxy and return its record as a dict (runs inside a Ray worker, or inline)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

    torch.set_num_threads(max(1, int(threads)))
    data = _load(data_dir)
    config = ProxyConfig.preset(preset).with_vocab(data.vocab_size)
    fn = train_fn or train_proxy
    ts = TrainSettings(**(dict(settings) | {"betas": tuple(settings.get("betas", (0.9, 0.95)))}))
    kwargs = {"tokens": tokens, "seed": seed, "settings": ts, "threads": threads}
    if train_fn is None:
        kwargs["device"] = device
    rec = fn(config, data, weights, **kwargs)
    return rec if isinstance(rec, dict) else rec.to_dict()


class ProxyTask:
    """Submits :func:`run_proxy` as a plain Ray task with a CPU/GPU share (no Ray Tune, no Ray retries:
    the search loop retries itself so that it can record each reason)."""

    def __init__(self, *, num_cpus: float, num_gpus: float):
        import ray

        self._remote = ray.remote(run_proxy).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0, retry_exceptions=False
        )

    def submit(self, **kwargs):
        return self._remote.remote(**kwargs)


def warm_worker(threads: int) -> float:
    """Import torch and the proxy trainer in this worker process, as a proxy would; returns when it is done
    (``time.time()``). Submitted once per proxy slot as soon as Ray is up (see ``ray_runtime``)."""
    import time

    import torch

    import mixopt.proxies  # noqa: F401 - the trainer and its models, imported once per worker

    torch.set_num_threads(max(1, int(threads)))
    return time.time()


def proxy_slots(cfg, cpus: float | None = None) -> int:
    """Proxies run at once: ``search.parallel``, else ``cpus`` over ``search.cpus_per_proxy`` (at least 1).

    cpus: the cluster's CPUs; ``None`` before Ray is up: the CPUs Ray will be given (``ray.num_cpus``, else
    this machine's, as for an embedded runtime).
    """
    if cpus is None:
        cpus = cfg.ray.num_cpus or os.cpu_count() or 1
    return int(cfg.search.parallel or max(1, int(cpus // cfg.search.cpus_per_proxy)))


def run_seed(base: int, index: int) -> int:
    """The proxy seed of run ``index`` of a job with seed ``base``."""
    import numpy as np

    return int(np.random.SeedSequence([int(base), int(index)]).generate_state(1)[0])
