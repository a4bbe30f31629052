"""RunRecord: one proxy run's mixture, fidelity and per-domain validation losses over steps.

>>> r = RunRecord(run_id="a1", weights={"code": 0.5, "web": 0.5}, preset="dense-tiny", seed=0, tokens=1000,
...               n_params=10, n_active_params=10, n_nonembed_params=5, flops=6e4, steps=[1], tokens_seen=[512],
...               val_loss={"code": [5.0], "web": [6.0]}, final_loss={"code": 5.0, "web": 6.0}, wall_time=0.5,
...               tokens_per_s=2000.0, status="ok")
>>> RunRecord.from_json(r.to_json()) == r
True
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from mixopt.errors import MixoptError

__all__ = ["RunRecord"]


@dataclass
class RunRecord:
    """The outcome of :func:`proxies.train_proxy`.

    ``tokens`` is the requested budget; ``extra["tokens_trained"]`` the tokens actually seen
    (``steps * batch_size * seq_len``, <= tokens) and ``flops`` the training FLOPs of those tokens
    (``flops_per_token * tokens_trained``). ``steps``/``tokens_seen`` list the evaluation points and
    ``val_loss[domain][i]`` the mean next-token loss (nats) on that domain's held-out tokens after
    ``steps[i]`` optimiser steps. ``final_loss`` is the last evaluation (empty when ``status == "failed"``;
    ``reason`` then says why). ``tokens_per_s`` counts training steps only (evaluation excluded);
    ``wall_time`` (seconds) the whole call. ``metrics`` holds the downstream evaluation tasks' results at
    the end of training, ``{"eval/<task>/<metric>": value}`` (:mod:`mixopt.proxies.evals`; empty without
    tasks).
    """

    run_id: str
    weights: dict[str, float]
    preset: str
    seed: int
    tokens: int
    n_params: int
    n_active_params: int
    n_nonembed_params: int
    flops: float
    steps: list[int]
    tokens_seen: list[int]
    val_loss: dict[str, list[float]]
    final_loss: dict[str, float]
    wall_time: float
    tokens_per_s: float
    status: str  # "ok" | "failed"
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def mean_final_loss(self) -> float:
        """Unweighted mean of the final per-domain losses (NaN for a failed run)."""
        vals = list(self.final_loss.values())
        return sum(vals) / len(vals) if vals else math.nan

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise MixoptError(f"run record is missing field(s) {missing}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise MixoptError(f"run record has unknown field(s) {unknown}")
        return cls(**d)

    def to_json(self) -> str:
        """One line of JSON (non-finite losses are written as NaN/Infinity, which json.loads reads back)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> RunRecord:
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise MixoptError(f"run record is not valid JSON ({e})") from None
        return cls.from_dict(d)
