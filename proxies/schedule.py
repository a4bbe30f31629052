"""Learning-rate schedules and the log-spaced evaluation steps of a proxy run.

>>> lr_factor(0, 100, schedule="cosine", warmup=0.1)
0.1
>>> eval_steps(100, 4)
[5, 14, 37, 100]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["eval_steps", "lr_factor"]


def lr_factor(step: int, total: int, *, schedule: str, warmup: float, min_lr_ratio: float = 0.1,
              decay_frac: float = 0.2) -> float:
    """Multiplier of the peak LR for 0-based ``step`` of ``total`` steps.

    Linear warmup over the first ``ceil(warmup * total)`` steps; then ``"cosine"`` decays to
    ``min_lr_ratio``, or ``"wsd"`` (warmup-stable-decay) holds 1 and decays linearly to ``min_lr_ratio``
    over the last ``decay_frac`` of the steps.
    """
    n_warm = math.ceil(warmup * total)
    if step < n_warm:
        return (step + 1) / n_warm
    if schedule == "cosine":
        progress = (step - n_warm) / max(1, total - n_warm - 1)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "wsd":
        n_decay = max(1, math.ceil(decay_frac * total))
        start = max(n_warm, total - n_decay)
        if step < start:
            return 1.0
        progress = (step - start + 1) / max(1, total - start)
        return 1.0 - (1 - min_lr_ratio) * min(1.0, progress)
    raise ValueError(f"unknown schedule {schedule!r}")


def eval_steps(total: int, points: int, first_frac: float = 0.05) -> list[int]:
    """``points`` log-spaced step counts in [first_frac * total, total] (1-based, after that many steps),
    deduplicated; always ends with ``total``."""
    if total <= 0:
        return []
    if points <= 1:
        return [total]
    grid = np.geomspace(max(1.0, first_frac * total), total, points)
    steps = sorted({int(round(s)) for s in grid} | {total})
    return [s for s in steps if 1 <= s <= total]
