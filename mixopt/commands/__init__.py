"""CLI verbs, one module per area; each exposes ``register(subparsers)``."""

from __future__ import annotations

from pathlib import Path

from mixopt.errors import MixoptError

__all__ = ["check_out_dir"]


def check_out_dir(out: Path | None) -> None:
    """``--out`` must be a folder or not exist yet: checked before any work, so nothing is half-written."""
    if out is not None and out.exists() and not out.is_dir():
        raise MixoptError(f"--out {out}: exists and is not a folder (give a folder to write into)")
