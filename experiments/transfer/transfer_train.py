"""Training jobs of the transfer experiment: one model (proxy or target scale) on one mixture and seed.

A job is a plain dict (it crosses a process boundary)::

    {"key": str, "data_dir": str, "model": ProxyConfig.to_dict(), "tokens": int, "seed": int,
     "weights": {domain: w}, "settings": TrainSettings kwargs, "online": None | {"mixer", "update_every",
     "params"}, "out": path of the JSON record to write}

Static mixtures go through ``proxies.train_proxy`` unchanged. ``online`` jobs train with a
``mixopt.online`` mixer changing the sampler's weights during training (see :func:`online_record`).
Each job writes its ``RunRecord`` dict atomically to ``out`` and returns it, so an interrupted
experiment resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["run_job", "run_jobs"]

_DATA: dict[str, object] = {}


def _data(data_dir: str):
    from mixopt.data import load_prepared

    if data_dir not in _DATA:
        _DATA.clear()
        _DATA[data_dir] = load_prepared(data_dir)
    return _DATA[data_dir]


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def run_job(job: dict) -> dict:
    """Train one model and return its record dict (also written to ``job["out"]``)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

    torch.set_num_threads(1)
    data = _data(job["data_dir"])
    config = ProxyConfig.from_dict(job["model"])
    settings = TrainSettings(**job["settings"])
    if job.get("online"):
        from transfer_online import online_record

        rec = online_record(config, data, job["weights"], tokens=job["tokens"], seed=job["seed"],
                            settings=settings, **job["online"])
    else:
        rec = train_proxy(config, data, job["weights"], tokens=job["tokens"], seed=job["seed"],
                          settings=settings, threads=1).to_dict()
    rec.setdefault("extra", {})
    rec["extra"] = dict(rec["extra"] or {}) | {"job_key": job["key"]}
    _write_json(Path(job["out"]), rec)
    return rec


def run_jobs(jobs: list[dict], workers: int, on_done=None) -> list[dict]:
    """Run jobs (skipping those whose ``out`` file exists) on ``workers`` spawned processes.

    ``on_done(job, record, fresh)`` is called in this process as each finishes (cached ones first).
    Returns the records in job order.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: dict[str, dict] = {}
    todo = []
    for job in jobs:
        out = Path(job["out"])
        if out.exists():
            results[job["key"]] = json.loads(out.read_text())
            if on_done:
                on_done(job, results[job["key"]], False)
        else:
            todo.append(job)
    if todo:
        t0 = time.time()
        # longest first, so the last worker does not start a big job alone at the end
        todo.sort(key=lambda j: -j["tokens"] * j["model"]["d_model"] ** 2 * j["model"]["n_layers"])
        if workers <= 1:
            for i, job in enumerate(todo):
                results[job["key"]] = rec = run_job(job)
                _progress(i + 1, len(todo), job, rec, t0)
                if on_done:
                    on_done(job, rec, True)
        else:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futs = {pool.submit(run_job, job): job for job in todo}
                for i, fut in enumerate(as_completed(futs)):
                    job = futs[fut]
                    results[job["key"]] = rec = fut.result()
                    _progress(i + 1, len(todo), job, rec, t0)
                    if on_done:
                        on_done(job, rec, True)
    return [results[j["key"]] for j in jobs]


def _progress(i: int, n: int, job: dict, rec: dict, t0: float) -> None:
    tps = rec.get("tokens_per_s") or 0
    print(f"  [{i}/{n}] {job['key']}: {rec.get('status')} wall {rec.get('wall_time', 0):.1f}s "
          f"({tps:,.0f} tok/s), elapsed {time.time() - t0:.0f}s", flush=True)
