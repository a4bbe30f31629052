"""HF Transformers integration: a Trainer that draws from mixopt's sampler and feeds an online mixer.

Needs the optional extra ``pip install 'mixopt[hf]'`` (imported only when this module is).

>>> mixing = OnlineMixing(make_mixer("default", data.domains), sampler, update_every=20)  # doctest: +SKIP
>>> trainer = MixoptTrainer(model=model, args=TrainingArguments(..., max_steps=1000), mixing=mixing)
>>> trainer.train()                              # or trainer.train(resume_from_checkpoint=True)

* :class:`MixoptTrainer` builds its train dataloader from the sampler (``{"input_ids", "labels",
  "domain_ids"}`` batches, labels = input_ids as HF causal LMs expect) and, in ``compute_loss``, records
  the per-sequence loss of every training micro-batch (so gradient accumulation is covered).
* :class:`MixingCallback` updates the mixer after optimiser steps and writes the mixer + sampler state
  into every checkpoint folder (``mixopt_online_rank<r>.json``); ``train(resume_from_checkpoint=...)``
  reads it back, so a resumed run continues with the same weights and the same batches (HF's own batch
  skipping is turned off: the sampler state already is the data position).
* Under DDP each rank needs its own sampler stream (``seed = base_seed + rank``); the per-domain sums are
  all-reduced, so every rank computes the same weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mixopt.online.base import MixerError
from mixopt.online.distributed import rank_and_world
from mixopt.online.torch_loop import OnlineMixing, per_sequence_loss

try:
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
except ImportError as e:  # pragma: no cover - exercised only without the extra
    import importlib.util

    # a script run from the mixopt checkout's root sees its kernels/ folder as the top-level `kernels`, which
    # shadows Hugging Face's package of that name (transformers >= 5.25 imports it)
    _spec, _mine = importlib.util.find_spec("kernels"), Path(__file__).resolve().parents[2] / "kernels"
    _shadow = _spec is not None and bool(_spec.origin) and Path(_spec.origin).resolve().parent == _mine
    raise MixerError(
        f"mixopt.online.hf needs transformers ({e}); "
        + (f"{_mine} shadows the 'kernels' package it imports: run from outside the mixopt checkout (or with "
           "python -P)" if _shadow else "install it with: pip install 'mixopt[hf]'")
    ) from None

__all__ = ["MixingCallback", "MixoptTrainer", "load_mixing_state", "save_mixing_state"]

STATE_FILE = "mixopt_online_rank{rank}.json"


def save_mixing_state(mixing: OnlineMixing, directory: str | os.PathLike) -> Path:
    """Write ``mixing.state_dict()`` (mixer, partial sums, sampler position) as JSON into ``directory``."""
    path = Path(directory) / STATE_FILE.format(rank=rank_and_world()[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(mixing.state_dict()))
    os.replace(tmp, path)
    return path


def load_mixing_state(mixing: OnlineMixing, directory: str | os.PathLike) -> None:
    """Restore what :func:`save_mixing_state` wrote into ``directory`` (MixerError when it is missing)."""
    path = Path(directory) / STATE_FILE.format(rank=rank_and_world()[0])
    if not path.is_file():
        raise MixerError(f"no online-mixing state in checkpoint {directory} (expected {path.name})")
    mixing.load_state_dict(json.loads(path.read_text()))


def _hf_batch(tokens: torch.Tensor, domain_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"input_ids": tokens, "labels": tokens, "domain_ids": domain_ids}


class MixingCallback(TrainerCallback):
    """Update the mixer after optimiser steps; save its state (and the sampler's) with each checkpoint."""

    def __init__(self, mixing: OnlineMixing):
        self.mixing = mixing

    def on_step_end(self, args, state, control, **kwargs):
        self.mixing.step(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        save_mixing_state(self.mixing, Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


class MixoptTrainer(Trainer):
    """``transformers.Trainer`` that trains on mixopt's sampler under an online mixer.

    Args:
        mixing: the :class:`~mixopt.online.OnlineMixing` (mixer + sampler) to drive.
        *args, **kwargs: as for ``Trainer`` (``args.max_steps`` must be set: the stream is endless).
    """

    def __init__(self, *args: Any, mixing: OnlineMixing, **kwargs: Any):
        if mixing.sampler is None:
            raise MixerError("MixoptTrainer needs OnlineMixing(..., sampler=...) to draw batches from")
        self.mixing = mixing
        self._mix_dataset = mixing.dataset or mixing.make_dataset(delay=1, collate=_hf_batch)
        kwargs.setdefault("train_dataset", self._mix_dataset)
        super().__init__(*args, **kwargs)
        if self.args.max_steps <= 0:
            raise MixerError("MixoptTrainer draws an endless stream: set TrainingArguments(max_steps=...)")
        self.args.ignore_data_skip = True  # the sampler state is the data position
        if mixing.mixer.total_steps is None:  # the run's length, for the mixer's cooldown
            mixing.mixer.set_total_steps(self.args.max_steps)
        self.add_callback(MixingCallback(mixing))

    def get_train_dataloader(self) -> DataLoader:
        return DataLoader(self._mix_dataset, batch_size=None, num_workers=0)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        domain_ids = inputs.pop("domain_ids", None)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if domain_ids is not None and model.training:
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[1]
            seq_loss, n_tok = per_sequence_loss(logits, inputs["labels"], shift=True)
            self.mixing.observe(seq_loss, domain_ids, n_tok)
        return (loss, outputs) if return_outputs else loss

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        if resume_from_checkpoint:
            path = (get_last_checkpoint(self.args.output_dir) if resume_from_checkpoint is True
                    else str(resume_from_checkpoint))
            if path is None:
                raise MixerError(f"resume_from_checkpoint=True but no checkpoint in {self.args.output_dir}")
            load_mixing_state(self.mixing, path)
            resume_from_checkpoint = path
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
