"""Two CPU ranks (gloo): per-domain sums are all-reduced, so both ranks compute identical weights."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixopt.online import OnlineMixing, make_mixer

DOMAINS = ["a", "b", "c"]


def _rank_losses(rank: int, step: int):
    """Each rank sees different sequences: rank 0 mostly domain a, rank 1 mostly c."""
    rng = np.random.default_rng(100 * rank + step)
    ids = rng.choice(3, size=16, p=[0.7, 0.2, 0.1] if rank == 0 else [0.1, 0.2, 0.7])
    loss = np.array([4.0 - 0.1 * step, 3.0 - 0.02 * step, 5.0])[ids] + rng.normal(0, 0.05, 16)
    return loss, ids


def _worker(rank: int, port: int, out_dir: str):
    import os

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        synced = OnlineMixing(make_mixer("default", DOMAINS, warmup=1), None, update_every=2)
        local = OnlineMixing(make_mixer("default", DOMAINS, warmup=1), None, update_every=2, sync=False)
        for step in range(1, 21):
            loss, ids = _rank_losses(rank, step)
            for mixing in (synced, local):
                mixing.observe(torch.tensor(loss), torch.tensor(ids), torch.full((16,), 8))
                mixing.step(step)
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"synced": synced.history, "local": local.history}, f)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # spawns processes / creates an MLflow sqlite store (~20-40 s on 2 busy cores)
def test_two_ranks_compute_identical_weights_equal_to_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["synced"] == r1["synced"]
    assert r0["local"] != r1["local"]  # without the all-reduce the ranks would disagree
    # ...and the synced weights equal one process that saw both ranks' sequences.
    single = OnlineMixing(make_mixer("default", DOMAINS, warmup=1), None, update_every=2, sync=False)
    for step in range(1, 21):
        for rank in range(2):
            loss, ids = _rank_losses(rank, step)
            single.observe(torch.tensor(loss), torch.tensor(ids), torch.full((16,), 8))
        single.step(step)
    h0 = r0["synced"]
    np.testing.assert_allclose(np.array([w for _, w in h0]), np.array([w for _, w in single.history]),
                               rtol=1e-12)
    assert len({tuple(w) for _, w in h0}) > 2
