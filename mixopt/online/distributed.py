"""All-reduce of per-domain loss sums and token counts, so every rank computes the same weights.

Mixers take *sums* and *counts* (never means), so summing them over ranks gives exactly the statistics a
single process would have seen for the global batch. When ``torch.distributed`` is not initialised (or
the world has one rank) this is a no-op.
"""

from __future__ import annotations

import numpy as np

__all__ = ["all_reduce_sums", "is_distributed", "rank_and_world"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available, initialised and has more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sums(*arrays: np.ndarray, group=None) -> tuple[np.ndarray, ...]:
    """Sum each ``(k,)`` array over all ranks (one collective for all of them); float64 in and out.

    Uses a CUDA tensor when the backend is NCCL, a CPU tensor otherwise (gloo, mpi). Every rank must call
    this with arrays of the same shapes, in the same order.
    """
    arrs = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if not is_distributed():
        return tuple(a.copy() for a in arrs)
    import torch
    import torch.distributed as dist

    flat = torch.from_numpy(np.concatenate(arrs))
    if dist.get_backend(group) == "nccl":
        flat = flat.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    out = flat.cpu().numpy()
    sizes = np.cumsum([0] + [len(a) for a in arrs])
    return tuple(out[sizes[i]:sizes[i + 1]].copy() for i in range(len(arrs)))
