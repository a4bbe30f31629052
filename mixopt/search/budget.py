"""The search budget: runs, tokens, FLOPs and wall time, whichever is reached first.

Spending is counted from finished runs (ok or failed: both cost compute; confirmation runs are extra and
not counted); a new run is launched only while the *committed* amount (finished + in flight) is below
every limit, so the search overshoots a token/FLOP limit by at most the runs already in flight. The wall
time is a hard limit: when it is reached, the runs in flight are cancelled (and stay pending).

>>> from mixopt.config import BudgetSettings
>>> b = Budget(BudgetSettings(runs=4))
>>> b.can_launch(Spend(runs=3), Spend(), elapsed_s=0.0)
True
>>> b.can_launch(Spend(runs=3), Spend(runs=1), elapsed_s=0.0)
False
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget", "Spend"]


@dataclass
class Spend:
    """An amount of search budget: run count, training tokens and FLOPs."""

    runs: int = 0
    tokens: int = 0
    flops: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.runs + other.runs, self.tokens + other.tokens, self.flops + other.flops)

    def to_dict(self) -> dict:
        return {"runs": self.runs, "tokens": self.tokens, "flops": self.flops}

    @classmethod
    def of(cls, runs) -> Spend:
        """What ``runs`` (``RunEntry`` list) took from the budget: every run but confirmation runs."""
        s = cls()
        for r in runs:
            if r.source != "confirm":
                s = s + cls(1, int(r.tokens), float(r.flops))
        return s


class Budget:
    """Limits from ``cfg.budget`` (``BudgetSettings``); any unset limit is ignored."""

    def __init__(self, settings):
        self.runs = settings.runs
        self.tokens = settings.tokens
        self.flops = settings.flops
        self.wall_seconds = settings.wall_seconds

    def fractions(self, spent: Spend, elapsed_s: float) -> dict[str, float]:
        """Fraction used of each set limit, e.g. ``{"runs": 0.5, "wall_seconds": 0.1}``."""
        out = {}
        for name, used, limit in (
            ("runs", spent.runs, self.runs),
            ("tokens", spent.tokens, self.tokens),
            ("flops", spent.flops, self.flops),
            ("wall_seconds", elapsed_s, self.wall_seconds),
        ):
            if limit is not None:
                out[name] = float(used) / float(limit)
        return out

    def fraction(self, spent: Spend, elapsed_s: float) -> float:
        """The largest used fraction (1.0 = spent)."""
        return max(self.fractions(spent, elapsed_s).values())

    def exhausted(self, spent: Spend, elapsed_s: float) -> bool:
        return self.fraction(spent, elapsed_s) >= 1.0

    def wall_exhausted(self, elapsed_s: float) -> bool:
        """Whether the wall-time limit is reached (then runs in flight are cancelled, see ``search.loop``)."""
        return self.wall_seconds is not None and elapsed_s >= self.wall_seconds

    def can_launch(self, spent: Spend, in_flight: Spend, elapsed_s: float) -> bool:
        """Whether one more run may start given finished + in-flight spending."""
        return not self.exhausted(spent + in_flight, elapsed_s)

    def left(self, spent: Spend, elapsed_s: float) -> dict[str, float]:
        """What is left of each set limit (never negative)."""
        out = {}
        for name, frac in self.fractions(spent, elapsed_s).items():
            out[name] = max(0.0, float(getattr(self, name)) * (1.0 - frac))
        return out

    def describe(self) -> str:
        parts = [f"{n}={getattr(self, n):g}" for n in ("runs", "tokens", "flops", "wall_seconds") if getattr(self, n)]
        return ", ".join(parts)
