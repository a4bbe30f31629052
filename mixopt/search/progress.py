"""Live progress of a search: runs done/running/failed, best objective, budget spent, ETA.

On a terminal it is one ``rich`` status line refreshed in place; when stdout is not a TTY (CI, logs,
``mixopt submit``) it prints one plain line per finished run instead.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

__all__ = ["ProgressDisplay", "Snapshot", "format_eta"]


@dataclass
class Snapshot:
    """What the display shows. ``budget`` is the used fraction of the tightest limit (0..1+)."""

    done: int
    running: int
    failed: int
    best: float | None
    budget: float
    elapsed_s: float
    last: str = ""

    def eta_s(self) -> float | None:
        if self.budget <= 0 or self.elapsed_s <= 0:
            return None
        return max(0.0, self.elapsed_s * (1.0 - self.budget) / self.budget)

    def line(self) -> str:
        best = f"{self.best:.4f}" if self.best is not None else "-"
        eta = self.eta_s()
        return (f"runs done {self.done} running {self.running} failed {self.failed} | best {best} | "
                f"budget {100 * min(self.budget, 9.99):.0f}% | elapsed {format_eta(self.elapsed_s)} | "
                f"eta {format_eta(eta) if eta is not None else '-'}")


def format_eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressDisplay:
    """``update(snapshot, event=None)`` after each change; ``close()`` at the end.

    ``enabled=False`` silences it; ``live=None`` picks the rich line on a TTY and plain lines otherwise.
    """

    def __init__(self, enabled: bool = True, live: bool | None = None, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._status = None
        self._last_plain = 0.0
        if self.enabled and self.live:
            from rich.console import Console

            self._console = Console(file=self.stream)
            self._status = self._console.status("starting search…")
            self._status.start()

    def update(self, snap: Snapshot, event: str | None = None) -> None:
        if not self.enabled:
            return
        if self._status is not None:
            if event:
                self._console.print(event)
            self._status.update(snap.line())
        elif event or time.monotonic() - self._last_plain > 30:
            self._last_plain = time.monotonic()
            print(f"{event + ' | ' if event else ''}{snap.line()}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._status is not None:
            self._console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
