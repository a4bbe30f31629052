"""Errors of the kernels package (a leaf: it imports nothing from the rest of mixopt)."""

from __future__ import annotations

__all__ = ["KernelError"]


class KernelError(ValueError):
    """An unknown or unavailable kernel implementation; the message is one line."""
