"""Online mixers (policies that change the mixture during training) and trainer integrations.

>>> from mixopt.online import make_mixer, OnlineMixing
>>> mixer = make_mixer("default", ["code", "web", "noise"])   # the reducible-loss mixer
>>> w = mixer.update(step=20, train_loss_sum=[30.0, 40.0, 55.0], train_token_count=[10, 10, 10])

The HF Trainer (:mod:`mixopt.online.hf`) and Lightning (:mod:`mixopt.online.lightning`) integrations are
imported on first use (optional extras ``mixopt[hf]``, ``mixopt[lightning]``).
"""

from mixopt.online.base import Mixer, MixerError, apply_floor, available_mixers, make_mixer, register_mixer
from mixopt.online.distributed import all_reduce_sums

__all__ = [
    "Mixer",
    "MixerError",
    "MixingDataset",
    "OnlineMixing",
    "all_reduce_sums",
    "apply_floor",
    "available_mixers",
    "make_mixer",
    "per_sequence_loss",
    "register_mixer",
]

_TORCH = {"MixingDataset", "OnlineMixing", "per_sequence_loss"}


def __getattr__(name: str):
    if name in _TORCH:  # imports torch; keep the numpy-only mixers light
        from mixopt.online import torch_loop

        return getattr(torch_loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
