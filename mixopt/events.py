"""Fallback events: every time mixopt takes a fallback path it says so and counts it.

A fallback (an acquisition that failed and was replaced, a model that could not be fitted, a round picked
at random) is logged as a warning with its cause *and* counted here under a stable name. The search job
records the counts of its session in ``state.json`` (``fallbacks``) and as MLflow tags on its parent run
(``mixopt.fallbacks.<name>``), so no fallback is silent.

>>> before = snapshot()
>>> fallback("demo.example", "nothing to see")
>>> since(before)
{'demo.example': 1}
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

__all__ = ["fallback", "since", "snapshot"]

log = logging.getLogger(__name__)
_COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def fallback(name: str, message: str, logger: logging.Logger | None = None) -> None:
    """Log ``message`` as a warning (on ``logger``) and count one ``name`` event."""
    (logger or log).warning("%s [fallback %s]", message, name)
    with _LOCK:
        _COUNTS[name] += 1


def snapshot() -> dict[str, int]:
    """The counts so far (to subtract later with :func:`since`)."""
    with _LOCK:
        return dict(_COUNTS)


def since(before: dict[str, int]) -> dict[str, int]:
    """Events counted after ``before`` was taken: ``{name: count}`` (names with none left out)."""
    with _LOCK:
        return {k: v - before.get(k, 0) for k, v in _COUNTS.items() if v - before.get(k, 0) > 0}
