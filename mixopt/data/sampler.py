"""The mixture sampler: fixed-length token sequences drawn from the domains in proportion to weights.

Batches are planned in blocks: one ``rng.random(2B x K)`` call draws the uniforms of the next K batches
(about 4096 sequences), the same numbers, in the same order, as K calls of ``rng.random(2B)`` -- the first B
of each batch's 2B pick its domains (inverse-CDF ``searchsorted`` of the weights), the last B its start
offsets (uniform over the domain's train tokens). A batch then costs its gather: for small batches B slices
joined by one ``np.concatenate`` (cheaper than k gathers), for large ones a
fancy index into a ``sliding_window_view`` of each domain's memmap. The sampler is a plain object driven
from the training loop's process:

* weights can change between batches (``set_weights``), e.g. by an online mixer: the planned uniforms
  are mapped to domains again with the new weights from the next batch on;
* ``state_dict()`` holds the numpy ``bit_generator`` state after the batches served (the block's start
  state advanced by the uniforms used, ``PCG64.advance``), so a resumed sampler yields exactly the
  batches the uninterrupted one would have, and states saved before block planning still load.

Both would break if copies lived in DataLoader worker processes (the trainer's ``set_weights`` would not
reach them and each would own part of the RNG stream), and a batch costs well under a millisecond, so
:class:`~mixopt.data.dataset.MixtureIterableDataset` refuses ``num_workers > 0``: use ``DataLoader(ds, batch_size=None)``.

>>> s = MixtureSampler(data, {"code": 0.7, "prose": 0.3}, seq_len=128, batch_size=16, seed=0)  # doctest: +SKIP
>>> tokens, domain_ids = s.next_batch()  # (16, 129) int64, (16,) int64 indices into data.domains
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from torch import from_numpy as torch_from_numpy

from mixopt.data.shards import PreparedData
from mixopt.data.weights import validate_weights
from mixopt.errors import DataError

__all__ = ["MixtureSampler"]

log = logging.getLogger(__name__)

_SLICE_MAX = 128  # batch size up to which per-row slices are faster than per-domain gathers
_PLAN_SEQUENCES = 4096  # sequences planned per RNG call (K = this // B batches, at least 1)


class MixtureSampler:
    """Draw ``(batch_size, seq_len+1)`` token windows from ``data.train``, domains chosen by ``weights``.

    Args:
        data: the prepared shards.
        weights: mapping ``{domain: w}`` or ``(k,)`` sequence; normalised with :func:`validate_weights`.
        seq_len: T; each sequence has T+1 tokens (inputs ``[:, :-1]``, targets ``[:, 1:]``).
        batch_size: B sequences per batch.
        seed: seeds the numpy ``PCG64`` generator; the same seed gives the same batches.
        max_epochs: cap on epochs consumed per domain (tokens drawn / train tokens, counting T tokens per
            sequence); None for no cap.
        on_epoch_cap: past the cap, ``"warn"`` once per domain or ``"fail"`` with a DataError (the batch is
            not drawn and the sampler state is unchanged).
    """

    def __init__(
        self,
        data: PreparedData,
        weights: Any,
        *,
        seq_len: int,
        batch_size: int,
        seed: int,
        max_epochs: float | None = None,
        on_epoch_cap: Literal["warn", "fail"] = "warn",
    ):
        if seq_len < 1 or batch_size < 1:
            raise DataError(f"seq_len and batch_size must be >= 1 (got {seq_len}, {batch_size})")
        if on_epoch_cap not in ("warn", "fail"):
            raise DataError(f"on_epoch_cap must be 'warn' or 'fail', got {on_epoch_cap!r}")
        self.data = data
        self.domains = list(data.domains)
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.max_epochs = max_epochs
        self.on_epoch_cap = on_epoch_cap
        width = self.seq_len + 1
        self._arrays, self._windows = [], []
        for d in self.domains:
            arr = np.asarray(data.train[d])  # plain ndarray view of the memmap: cheaper to slice
            if len(arr) < width:
                raise DataError(f"domain {d!r}: train split has {len(arr)} tokens, fewer than seq_len+1 = {width}")
            self._arrays.append(arr)
            self._windows.append(sliding_window_view(arr, width))  # (n_d - T, T+1) view, no copy
        self._n_starts = np.array([len(w) for w in self._windows], dtype=np.int64)
        self._train_tokens = data.train_tokens().astype(np.float64)
        self.set_weights(weights)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._block = max(1, _PLAN_SEQUENCES // self.batch_size)  # K batches planned per RNG call
        self._plan_state: dict | None = None  # bit_generator state before the planned block (None: no plan)
        self._tokens_drawn = np.zeros(len(self.domains), dtype=np.int64)
        self._batches = 0
        self._warned: set[str] = set()

    def set_weights(self, weights: Any) -> None:
        """Change the mixture; takes effect from the next batch."""
        self.weights = validate_weights(weights, self.domains)
        self._cdf = np.cumsum(self.weights)
        self._cdf[-1] = 1.0
        if getattr(self, "_plan_state", None) is not None:
            self._map_plan()

    # --- the plan: uniforms of the next K batches, mapped to (domain, start) with the current weights ---
    def _new_plan(self) -> None:
        B = self.batch_size
        self._plan_state = self._rng.bit_generator.state
        self._u = self._rng.random(2 * B * self._block).reshape(self._block, 2 * B)  # = K draws of 2B
        self._next = 0
        self._map_plan()

    def _map_plan(self) -> None:
        B, k = self.batch_size, len(self.domains)
        u = self._u
        dom = np.searchsorted(self._cdf, u[:, :B], side="right")  # (K, B) inverse-CDF sampling of the weights
        starts = (u[:, B:] * self._n_starts[dom]).astype(np.int64)  # (K, B) uniform over valid window starts
        self._dom, self._starts = dom, starts
        self._dom_list, self._starts_list = dom.tolist(), starts.tolist()
        self._counts = np.bincount((dom + k * np.arange(len(dom))[:, None]).ravel(),
                                   minlength=k * len(dom)).reshape(len(dom), k)  # (K, k) sequences per domain
        self._dom_torch = torch_from_numpy(dom)

    def _rng_state(self) -> dict:
        """The ``bit_generator`` state after the batches served so far (as if drawn batch by batch)."""
        if self._plan_state is None:
            return self._rng.bit_generator.state
        bg = np.random.PCG64()
        bg.state = self._plan_state
        bg.advance(2 * self.batch_size * self._next)  # one 64-bit draw per float64 uniform
        return bg.state

    def next_batch(self):
        """Return ``(tokens, domain_ids)``: LongTensor ``(B, T+1)`` and LongTensor ``(B,)`` into ``domains``."""
        if self._plan_state is None or self._next == self._block:
            self._new_plan()
        i, B, width = self._next, self.batch_size, self.seq_len + 1
        counts = self._counts[i]
        drawn = self._tokens_drawn + counts * self.seq_len
        if self.max_epochs is not None:
            self._check_cap(drawn, counts)
        if B <= _SLICE_MAX:  # small batches: B slices and one concatenate beat k fancy-index gathers
            arrays = self._arrays
            rows = [arrays[d][s : s + width] for d, s in zip(self._dom_list[i], self._starts_list[i], strict=True)]
            out = np.concatenate(rows).reshape(B, width).astype(np.int64)
        else:
            out = np.empty((B, width), dtype=np.int64)
            dom, starts = self._dom[i], self._starts[i]
            for d in np.flatnonzero(counts):
                rows = np.flatnonzero(dom == d)
                out[rows] = self._windows[d][starts[rows]]
        self._next = i + 1
        self._tokens_drawn = drawn
        self._batches += 1
        return torch_from_numpy(out), self._dom_torch[i]

    def _check_cap(self, drawn: np.ndarray, counts: np.ndarray) -> None:
        epochs = drawn / self._train_tokens
        for i in np.flatnonzero((epochs > self.max_epochs) & (counts > 0)):
            d = self.domains[i]
            msg = (f"domain {d!r} passed max_epochs={self.max_epochs:g} ({epochs[i]:.2f} epochs of "
                   f"{int(self._train_tokens[i])} train tokens); lower its weight or the token budget")
            if self.on_epoch_cap == "fail":
                raise DataError(msg)  # the batch is not served: the sampler stays as it was
            if d not in self._warned:
                self._warned.add(d)
                warnings.warn(msg, UserWarning, stacklevel=3)
                log.warning(msg)

    def __iter__(self):
        while True:
            yield self.next_batch()

    def epochs_consumed(self) -> dict[str, float]:
        """``{domain: tokens drawn / train tokens}`` so far (T tokens counted per sequence)."""
        return {d: float(self._tokens_drawn[i] / self._train_tokens[i]) for i, d in enumerate(self.domains)}

    def tokens_drawn(self) -> dict[str, int]:
        return {d: int(self._tokens_drawn[i]) for i, d in enumerate(self.domains)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (plain Python types, JSON-serialisable)."""
        return {
            "domains": list(self.domains),
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "weights": self.weights.tolist(),
            "rng_state": self._rng_state(),
            "tokens_drawn": self._tokens_drawn.tolist(),
            "batches": self._batches,
            "warned": sorted(self._warned),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; DataError if it was made for other domains or shapes."""
        for key in ("domains", "seq_len", "batch_size"):
            mine = getattr(self, key)
            if list(sd[key]) != list(mine) if key == "domains" else sd[key] != mine:
                raise DataError(f"sampler state was saved with {key}={sd[key]!r}, this sampler has {mine!r}")
        self.seed = int(sd["seed"])
        self.set_weights(sd["weights"])
        self._rng.bit_generator.state = sd["rng_state"]
        self._plan_state = None  # plan afresh from the restored state
        self._tokens_drawn = np.asarray(sd["tokens_drawn"], dtype=np.int64)
        self._batches = int(sd["batches"])
        self._warned = set(sd["warned"])
