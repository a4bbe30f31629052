"""A ``torch.utils.data.IterableDataset`` over a :class:`~mixopt.data.sampler.MixtureSampler`.

The sampler runs in the training process (see :mod:`mixopt.data.sampler` for why), so this wrapper only
exists for code that wants a ``DataLoader``: ``DataLoader(MixtureIterableDataset(sampler),
batch_size=None)``. Iterating it inside a worker (``num_workers > 0``) raises a one-line DataError.
"""

from __future__ import annotations

import torch.utils.data

from mixopt.data.sampler import MixtureSampler
from mixopt.errors import DataError

__all__ = ["MixtureIterableDataset"]


class MixtureIterableDataset(torch.utils.data.IterableDataset):
    """Yields ``(tokens (B, T+1), domain_ids (B,))`` batches from ``sampler`` forever."""

    def __init__(self, sampler: MixtureSampler):
        super().__init__()
        self.sampler = sampler

    def __iter__(self):
        if torch.utils.data.get_worker_info() is not None:
            raise DataError(
                "MixtureSampler runs in the main process: use DataLoader(..., batch_size=None, num_workers=0) "
                "(set_weights and state_dict would not reach worker copies)"
            )
        return iter(self.sampler)
