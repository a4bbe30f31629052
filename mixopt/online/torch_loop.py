"""Plain-PyTorch wiring: per-sequence losses, the :class:`OnlineMixing` helper and a resumable dataset.

A training loop calls :meth:`OnlineMixing.observe` once per (micro-)batch with per-sequence losses and
:meth:`OnlineMixing.step` once per optimiser step; every ``update_every`` steps the per-domain loss sums
are all-reduced (when ``torch.distributed`` is initialised), the mixer updates, and the sampler gets the
new weights::

    mixing = OnlineMixing(make_mixer("default", data.domains), sampler, update_every=20, total_steps=steps)
    for step in range(1, steps + 1):
        tokens, domain_ids = sampler.next_batch()                  # (B, T+1), (B,)
        logits = model(tokens[:, :-1])                             # (B, T, V)
        loss, n_tok = per_sequence_loss(logits, tokens[:, 1:])     # (B,), (B,)
        (loss * n_tok).sum().div(n_tok.sum()).backward(); opt.step(); opt.zero_grad()
        mixing.observe(loss, domain_ids, n_tok)
        mixing.step(step)

``mixing.state_dict()`` holds the mixer, the partial sums and the sampler's state: save it with the model
checkpoint and a resumed run continues with the same weights and the same batches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixopt.online.base import Mixer, MixerError
from mixopt.online.distributed import all_reduce_sums

__all__ = ["MixingDataset", "OnlineMixing", "per_sequence_loss"]


def per_sequence_loss(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, shift: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token cross-entropy of each sequence, without gradient.

    Args:
        logits: ``(B, T, V)``.
        targets: ``(B, T)`` token ids; positions equal to ``ignore_index`` are skipped.
        shift: True for HF-style ``labels == input_ids``: predict ``targets[:, 1:]`` from ``logits[:, :-1]``.
    Returns:
        ``(loss (B,) float32 nats/token, token_count (B,) int64)``; a sequence with no target tokens has
        loss 0 and count 0.
    """
    with torch.no_grad():
        if shift:
            logits, targets = logits[:, :-1], targets[:, 1:]
        b, t, v = logits.shape
        tok = F.cross_entropy(logits.reshape(b * t, v).float(), targets.reshape(b * t),
                              ignore_index=ignore_index, reduction="none").view(b, t)
        count = (targets != ignore_index).sum(dim=1)
        loss = tok.sum(dim=1) / count.clamp(min=1)
    return loss, count


def _np(x: Any, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


class MixingDataset(torch.utils.data.IterableDataset):
    """Batches from a sampler for framework loops that prefetch (HF Trainer, Lightning).

    Yields ``(tokens (B, T+1), domain_ids (B,))`` (or what ``collate`` makes of them) forever. Frameworks
    draw a batch or so ahead of the step that consumes it, so new weights are *scheduled* to take effect
    from batch ``consumed + delay`` rather than set at once; the stream is then the same whether or not a
    batch was prefetched, and :meth:`state_dict` can return the sampler exactly as it was after the last
    *consumed* batch (it keeps snapshots of the last few). Use with ``DataLoader(ds, batch_size=None)``
    and no workers.
    """

    def __init__(self, sampler: Any, delay: int = 1, collate: Callable | None = None, keep: int = 8):
        super().__init__()
        if delay < 0 or keep < delay + 2:
            raise MixerError(f"need delay >= 0 and keep >= delay + 2, got delay={delay}, keep={keep}")
        self.sampler, self.delay, self.collate, self.keep = sampler, int(delay), collate, int(keep)
        self.produced = 0
        self._schedule: list[tuple[int, list[float]]] = []  # (first batch index, weights)
        self._snaps: dict[int, dict] = {}

    def schedule_weights(self, weights: np.ndarray, consumed: int) -> None:
        """Use ``weights`` from batch index ``consumed + delay`` on (or the next batch drawn, if later)."""
        first = max(int(consumed) + self.delay, self.produced)
        self._schedule.append((first, [float(x) for x in weights]))

    def __iter__(self):
        if torch.utils.data.get_worker_info() is not None:
            raise MixerError("MixingDataset must be read in the main process: use "
                             "DataLoader(ds, batch_size=None)")
        while True:
            n = self.produced
            self._snaps[n] = copy.deepcopy(self.sampler.state_dict())
            self._snaps.pop(n - self.keep, None)
            oldest = min(self._snaps)
            self._schedule = [(i, w) for i, w in self._schedule if i >= oldest]
            due = [w for i, w in self._schedule if i == n]
            if due:
                self.sampler.set_weights(due[-1])
            tokens, domain_ids = self.sampler.next_batch()
            self.produced = n + 1
            yield (tokens, domain_ids) if self.collate is None else self.collate(tokens, domain_ids)

    def state_dict(self, consumed: int) -> dict[str, Any]:
        """State as of just after ``consumed`` batches were consumed (prefetched batches are re-drawn)."""
        if consumed == self.produced:
            sampler_sd = copy.deepcopy(self.sampler.state_dict())
        elif consumed in self._snaps:
            sampler_sd = copy.deepcopy(self._snaps[consumed])
        else:
            raise MixerError(
                f"cannot checkpoint the data stream: {self.produced} batches drawn but {consumed} consumed "
                f"(prefetch deeper than keep={self.keep})"
            )
        sched = [[i, list(w)] for i, w in self._schedule if i >= consumed]
        return {"sampler": sampler_sd, "produced": int(consumed), "schedule": sched}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.sampler.load_state_dict(copy.deepcopy(sd["sampler"]))
        self.produced = int(sd["produced"])
        self._schedule = [(int(i), list(w)) for i, w in sd["schedule"]]
        self._snaps = {}


class OnlineMixing:
    """Accumulate per-domain losses and update the mixture every ``update_every`` optimiser steps.

    Args:
        mixer: from :func:`~mixopt.online.make_mixer` (its domains index ``domain_ids``).
        sampler: anything with ``set_weights(w)`` and ``state_dict()/load_state_dict()`` (a
            :class:`~mixopt.data.MixtureSampler`); its weights are set to the mixer's at construction.
        update_every: optimiser steps between mixer updates.
        sync: all-reduce the sums over ranks (no-op without ``torch.distributed``); every rank must then
            call :meth:`step` with the same steps.
        tracker: optional ``tracker(step, weights_dict)`` called after each update (e.g.
            :class:`~mixopt.online.tracking.MlflowWeightLogger`).
        total_steps: the run's length in optimiser steps, passed to the mixer
            (:meth:`~mixopt.online.base.Mixer.set_total_steps`; the default mixer's cooldown needs it).

    Attributes:
        history: ``[(step, [w_1..w_k]), ...]`` weights after each update, starting with step 0.
        batches_observed: number of :meth:`observe` calls (batches consumed by training).
    """

    def __init__(self, mixer: Mixer, sampler: Any = None, *, update_every: int = 10, sync: bool = True,
                 tracker: Callable[[int, dict[str, float]], None] | None = None,
                 total_steps: int | None = None):
        if update_every < 1:
            raise MixerError(f"update_every must be >= 1, got {update_every}")
        if total_steps is not None:
            mixer.set_total_steps(total_steps)
        self.mixer, self.sampler, self.update_every = mixer, sampler, int(update_every)
        self.sync, self.tracker = sync, tracker
        self.dataset: MixingDataset | None = None
        self._dataset_state: dict | None = None
        k = mixer.k
        self._sum, self._count = np.zeros(k), np.zeros(k)
        self.batches_observed = 0
        self.last_update_step = 0
        self.history: list[tuple[int, list[float]]] = [(0, mixer.weights.tolist())]
        if sampler is not None:
            sd = getattr(sampler, "domains", None)
            if sd is not None and list(sd) != list(mixer.domains):
                raise MixerError(f"sampler domains {list(sd)} differ from mixer domains {mixer.domains}")
            sampler.set_weights(mixer.weights)

    def make_dataset(self, delay: int = 1, collate: Callable | None = None) -> MixingDataset:
        """A :class:`MixingDataset` over the sampler; from now on new weights are scheduled through it."""
        if self.sampler is None:
            raise MixerError("OnlineMixing.make_dataset needs a sampler")
        self.dataset = MixingDataset(self.sampler, delay=delay, collate=collate)
        if self._dataset_state is not None:  # restored before the framework built its dataloader
            self.dataset.load_state_dict(self._dataset_state)
            self._dataset_state = None
        return self.dataset

    @property
    def weights(self) -> np.ndarray:
        return self.mixer.weights

    def observe(self, loss: Any, domain_ids: Any, token_counts: Any = None) -> None:
        """Add one batch: ``loss`` ``(B,)`` mean loss per sequence (nats/token), ``domain_ids`` ``(B,)``
        indices into the mixer's domains, ``token_counts`` ``(B,)`` tokens per sequence (1 each if None)."""
        loss = _np(loss, np.float64)
        raw = _np(domain_ids, np.float64)
        if not np.all(np.isfinite(raw) & (raw == np.round(raw))):
            raise MixerError(f"observe: domain_ids must be whole numbers, got {raw[raw != np.round(raw)][:3].tolist()}")
        ids = raw.astype(np.int64)
        n = np.ones_like(loss) if token_counts is None else _np(token_counts, np.float64)
        if not (loss.shape == ids.shape == n.shape):
            raise MixerError(f"observe: loss {loss.shape}, domain_ids {ids.shape} and "
                             f"token_counts {n.shape} must have the same length")
        k = len(self._sum)
        try:
            cnt = np.bincount(ids, weights=n, minlength=k)
        except ValueError:  # negative ids
            cnt = np.zeros(k + 1)
        if len(cnt) > k:
            raise MixerError(f"observe: domain_ids must be in [0, {k}), got {ids.min()}..{ids.max()}")
        self._sum += np.bincount(ids, weights=loss * n, minlength=k)
        self._count += cnt
        self.batches_observed += 1

    def step(self, step: int, eval_loss: Any = None) -> np.ndarray | None:
        """Call after optimiser step ``step``; updates (and returns the new weights) when it is due."""
        if step - self.last_update_step < self.update_every:
            return None
        s, c = all_reduce_sums(self._sum, self._count) if self.sync else (self._sum, self._count)
        w = self.mixer.update(step, s, c, eval_loss)
        self._sum[:] = 0.0
        self._count[:] = 0.0
        self.last_update_step = int(step)
        if self.dataset is not None:
            self.dataset.schedule_weights(w, self.batches_observed)
        elif self.sampler is not None:
            self.sampler.set_weights(w)
        self.history.append((int(step), w.tolist()))
        if self.tracker is not None:
            self.tracker(int(step), self.mixer.weights_dict())
        return w

    def state_dict(self) -> dict[str, Any]:
        """Mixer, pending sums, history and the data stream position (sampler or dataset); JSON-able."""
        sd: dict[str, Any] = {
            "mixer": self.mixer.state_dict(),
            "sum": self._sum.tolist(),
            "count": self._count.tolist(),
            "batches_observed": self.batches_observed,
            "last_update_step": self.last_update_step,
            "history": [[s, list(w)] for s, w in self.history],
        }
        if self.dataset is not None:
            sd["dataset"] = self.dataset.state_dict(self.batches_observed)
        elif self.sampler is not None:
            sd["sampler"] = copy.deepcopy(self.sampler.state_dict())
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.mixer.load_state_dict(sd["mixer"])
        self._sum = np.asarray(sd["sum"], dtype=np.float64).copy()
        self._count = np.asarray(sd["count"], dtype=np.float64).copy()
        self.batches_observed = int(sd["batches_observed"])
        self.last_update_step = int(sd["last_update_step"])
        self.history = [(int(s), list(w)) for s, w in sd["history"]]
        if "dataset" in sd and self.dataset is not None:
            self.dataset.load_state_dict(sd["dataset"])
        elif "dataset" in sd:
            self._dataset_state = copy.deepcopy(sd["dataset"])  # applied by make_dataset()
        elif "sampler" in sd and self.sampler is not None:
            self.sampler.load_state_dict(copy.deepcopy(sd["sampler"]))
