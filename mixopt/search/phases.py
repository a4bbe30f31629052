"""Where a search session's wall time goes: named phases with their start and end.

Phases may overlap (Ray starts and the MLflow store is opened in the background while the data is
prepared); each is recorded as ``(start, end)`` in ``time.time()`` and reported in seconds from the
session's start (the call of ``run_search``), so a reader can see what was on the critical path.

>>> clock = PhaseClock()
>>> with clock("data"):
...     pass
>>> sorted(clock.to_dict()["data"])
['end_s', 's', 'start_s']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

__all__ = ["PhaseClock"]


class PhaseClock:
    """Named wall-clock spans of one session, relative to ``t0`` (its creation)."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.spans: dict[str, tuple[float, float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:
            self.add(name, start, time.time())

    def add(self, name: str, start: float | None, end: float | None) -> None:
        """Record a span measured elsewhere (e.g. by a background thread); ignored while either end is unknown."""
        if start is not None and end is not None:
            self.spans[name] = (float(start), float(end))

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{phase: {"start_s", "end_s", "s"}}`` in seconds, in the order the phases started."""
        order = sorted(self.spans.items(), key=lambda kv: kv[1][0])
        return {k: {"start_s": a - self.t0, "end_s": b - self.t0, "s": b - a} for k, (a, b) in order}
