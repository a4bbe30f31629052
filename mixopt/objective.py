"""The objective: what "lower is better" means for a run, parsed once and applied everywhere.

An objective is a weighted sum of a run table's targets (per-domain losses or any recorded metric
column). It is written the same way in a job's YAML (``search.objective``), on the command line
(``--objective``) and in Python:

- ``"mean"`` (default): the mean of every target;
- a target name (``"code"``, ``"metric/pile_cc"``): that one column;
- weights ``{"code": 2, "web": 1}`` (YAML / Python) or ``"code=2,web=1"`` (command line). A target may be
  named by its full column name or by any part of the name that matches exactly one target. Weights are
  normalised by the sum of their absolute values, so ``{"a": 2, "b": 2}`` is the mean of ``a`` and ``b``;
  a negative weight maximises that column (an accuracy, say).

Errors are one line and name the columns (:class:`~mixopt.errors.TableError`).

>>> import numpy as np
>>> obj = Objective.parse("code=3,web=1")
>>> obj.weights(["web", "code", "math"]).tolist()
[0.25, 0.75, 0.0]
>>> float(obj.values(np.array([[2.0, 4.0, 9.0]]), ["web", "code", "math"])[0])
3.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from mixopt.errors import TableError

__all__ = ["Objective"]


class Objective:
    """A weighted sum of targets, lower is better (see the module docstring for the forms ``spec`` takes)."""

    def __init__(self, spec: str | Mapping[str, float] | None = "mean") -> None:
        if spec is None:
            spec = "mean"
        if isinstance(spec, Objective):
            spec = spec.spec
        if isinstance(spec, str) and "=" in spec:
            spec = _parse_weights(spec)
        if isinstance(spec, str):
            spec = spec.strip()
            if not spec:
                raise TableError("objective: empty; use 'mean', a target name or 'target=weight,...'")
        elif isinstance(spec, Mapping):
            if not spec:
                raise TableError("objective: no targets given")
            clean = {}
            for name, w in spec.items():
                try:
                    w = float(w)
                except (TypeError, ValueError):
                    raise TableError(f"objective: weight of {name!r} is not a number ({w!r})") from None
                if not math.isfinite(w):
                    raise TableError(f"objective: weight of {name!r} is not finite ({w})")
                clean[str(name)] = w
            if not any(clean.values()):
                raise TableError("objective: every weight is zero")
            spec = clean
        else:
            raise TableError(f"objective: expected 'mean', a target name or a mapping, got {spec!r}")
        self.spec: str | dict[str, float] = spec

    @classmethod
    def parse(cls, text: str | Mapping[str, float] | Objective | None) -> Objective:
        """From a command-line string (``mean``, ``name`` or ``name=w,name=w``), a mapping or an Objective."""
        return text if isinstance(text, Objective) else cls(text)

    @property
    def is_mean(self) -> bool:
        return self.spec == "mean"

    def __repr__(self) -> str:
        return f"Objective({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash(self.spec if isinstance(self.spec, str) else frozenset(self.spec.items()))

    def describe(self) -> str:
        """``mean``, ``code`` or ``code=2,web=1``: the command-line form."""
        if isinstance(self.spec, str):
            return self.spec
        return ",".join(f"{k}={v:g}" for k, v in self.spec.items())

    @property
    def names(self) -> list[str]:
        """The target names the objective gives (empty for ``mean``)."""
        if self.spec == "mean":
            return []
        return [self.spec] if isinstance(self.spec, str) else list(self.spec)

    def to_json(self) -> str | dict[str, float]:
        return self.spec if isinstance(self.spec, str) else dict(self.spec)

    # ------------------------------------------------------------------ resolution
    def weights(self, target_names: Sequence[str]) -> np.ndarray:
        """``(m,)`` weights over ``target_names`` (zero for targets the objective does not use)."""
        names = [str(t) for t in target_names]
        m = len(names)
        if m == 0:
            raise TableError("objective: the table has no targets")
        if self.spec == "mean":
            return np.full(m, 1.0 / m)
        raw = {self.spec: 1.0} if isinstance(self.spec, str) else self.spec
        w = np.zeros(m)
        for key, val in raw.items():
            w[_find(key, names)] += val
        scale = np.abs(w).max()
        if scale == 0:
            raise TableError(f"objective {self.describe()!r}: the weights cancel out to zero")
        w = w / scale  # huge weights (1e308) stay finite
        return w / np.abs(w).sum()

    def values(self, Y: np.ndarray, target_names: Sequence[str]) -> np.ndarray:
        """``(n,)`` objective of per-target values ``Y (n, m)`` (NaN in a column the objective ignores
        does not matter)."""
        Y = np.asarray(Y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        w = self.weights(target_names)
        used = w != 0
        return Y[:, used] @ w[used]

    def combine_std(self, S: np.ndarray, target_names: Sequence[str]) -> np.ndarray:
        """``(n,)`` std of the objective from per-target stds ``S (n, m)`` (targets treated as independent)."""
        S = np.asarray(S, dtype=np.float64)
        S = S[:, None] if S.ndim == 1 else S
        w = self.weights(target_names)
        used = w != 0
        return np.sqrt((S[:, used] ** 2) @ (w[used] ** 2))

    def used_targets(self, target_names: Sequence[str]) -> list[int]:
        """Indices of the targets with a non-zero weight (the only ones a model needs to fit)."""
        return [int(i) for i in np.flatnonzero(self.weights(target_names))]

    def scored_domains(self, target_names: Sequence[str], domains: Sequence[str]) -> list[str]:
        """The ``domains`` (in order) whose loss is a target with a non-zero weight."""
        names = list(target_names)
        used = {names[i] for i in self.used_targets(names)}
        return [d for d in domains if d in used]


def _parse_weights(text: str) -> dict[str, float]:
    """``{name: weight}`` from the command-line form ``name=w,name=w``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, val = part.rpartition("=")
        if not sep or not name.strip():
            raise TableError(f"objective: expected 'mean', a target name or 'name=weight,...', got {text!r}")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise TableError(f"objective: {val.strip()!r} (for {name.strip()!r}) is not a number") from None
    return out


def _find(key: str, names: list[str]) -> int:
    """Index of the target ``key`` names: its exact column name, or the one target containing it."""
    if key in names:
        return names.index(key)
    hits = [i for i, t in enumerate(names) if key in t]
    if len(hits) == 1:
        return hits[0]
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    if not hits:
        raise TableError(f"objective names unknown target {key!r}; targets are: {shown}")
    raise TableError(f"objective target {key!r} matches {len(hits)} targets "
                     f"({', '.join(names[i] for i in hits[:5])}); give the full column name")
