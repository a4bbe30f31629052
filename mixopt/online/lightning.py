"""Lightning integration: a ``Callback`` that feeds an online mixer and checkpoints it with the trainer.

Needs the optional extra ``pip install 'mixopt[lightning]'`` (imported only when this module is).

The LightningModule's ``training_step`` returns, besides ``"loss"``, the per-sequence losses of the batch::

    def training_step(self, batch, batch_idx):
        tokens, domain_ids = batch                                  # (B, T+1), (B,)
        logits = self(tokens[:, :-1])                               # (B, T, V)
        seq_loss, n_tok = per_sequence_loss(logits, tokens[:, 1:])  # (B,), (B,) -- no grad
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        return {"loss": loss, "seq_loss": seq_loss, "domain_ids": domain_ids, "token_counts": n_tok}

    def train_dataloader(self):
        return mixing_dataloader(self.mixing)

and the trainer gets ``callbacks=[MixingCallback(mixing)]``. The mixer updates after optimiser steps
(``trainer.global_step``, so gradient accumulation is covered); the mixer, partial sums and the sampler
position go into the Lightning checkpoint (``Callback.state_dict``; under DDP every rank's state is gathered
into it), so ``trainer.fit(..., ckpt_path=...)`` continues with the same weights and the same batches.
"""

from __future__ import annotations

import math
from typing import Any

from mixopt.online.base import MixerError

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MixerError(
        f"mixopt.online.lightning needs lightning ({e}); install it with: pip install 'mixopt[lightning]'"
    ) from None

from torch.utils.data import DataLoader

from mixopt.online.distributed import is_distributed, rank_and_world
from mixopt.online.torch_loop import OnlineMixing

__all__ = ["MixingCallback", "mixing_dataloader"]


def mixing_dataloader(mixing: OnlineMixing) -> DataLoader:
    """A ``DataLoader`` of ``(tokens (B, T+1), domain_ids (B,))`` batches from the mixing's sampler.

    Lightning prefetches one batch; new weights are scheduled one batch ahead so the stream (and a resumed
    stream) does not depend on it.
    """
    ds = mixing.dataset or mixing.make_dataset(delay=1)
    return DataLoader(ds, batch_size=None, num_workers=0)


class MixingCallback(Callback):
    """Observe per-sequence losses from ``training_step``'s output; update after optimiser steps.

    ``outputs`` must be a dict with ``"seq_loss"`` ``(B,)`` (mean loss per sequence) and optionally
    ``"domain_ids"`` ``(B,)`` (else ``batch[1]``) and ``"token_counts"`` ``(B,)``.
    """

    def __init__(self, mixing: OnlineMixing):
        self.mixing = mixing
        self._length_given = mixing.mixer.total_steps is not None  # else the trainer's, at every start

    @property
    def state_key(self) -> str:
        return "MixingCallback"

    def on_train_start(self, trainer, pl_module) -> None:
        """Give the mixer the run's length (for its cooldown) unless it was given: the trainer's, also over a
        length restored from a checkpoint (Lightning restores callbacks before this hook), as the HF trainer
        does for a resumed run that was extended."""
        if not self._length_given:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else \
                trainer.estimated_stepping_batches
            if isinstance(total, (int, float)) and math.isfinite(total) and total >= 1:
                self.mixing.mixer.set_total_steps(int(total))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not isinstance(outputs, dict) or "seq_loss" not in outputs:
            raise MixerError("MixingCallback: training_step must return a dict with 'seq_loss' (B,) "
                             "(see mixopt.online.per_sequence_loss)")
        domain_ids = outputs.get("domain_ids", batch[1] if isinstance(batch, (tuple, list)) else None)
        if domain_ids is None:
            raise MixerError("MixingCallback: return 'domain_ids' from training_step or use (tokens, ids) "
                             "batches")
        self.mixing.observe(outputs["seq_loss"], domain_ids, outputs.get("token_counts"))
        # global_step counts optimiser steps; repeated calls within one step are no-ops.
        self.mixing.step(trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        """The mixing state; under DDP, every rank's (each rank has its own sampler stream), gathered so
        that rank 0's checkpoint holds them all."""
        sd = self.mixing.state_dict()
        if not is_distributed():
            return sd
        import torch.distributed as dist

        per_rank: list[Any] = [None] * rank_and_world()[1]
        dist.all_gather_object(per_rank, sd)
        return {"per_rank": per_rank}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "per_rank" in state_dict:
            rank, world = rank_and_world()
            if len(state_dict["per_rank"]) != world:
                raise MixerError(f"checkpoint holds mixing state for {len(state_dict['per_rank'])} ranks, "
                                 f"this run has {world}")
            state_dict = state_dict["per_rank"][rank]
        self.mixing.load_state_dict(state_dict)
