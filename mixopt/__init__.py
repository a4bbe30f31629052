"""mixopt: data-mixture optimisation for language-model pretraining.

Importing ``mixopt`` is cheap (no torch, pydantic or yaml): the names below load on first use, so the
lower layers (``mixopt.errors``, ``mixopt.kernels``, ``mixopt.proxies``) can be imported on their own.
"""

from __future__ import annotations

__all__ = ["JobConfig", "MixoptError", "load_job_config"]
__version__ = "0.1.0"

_LAZY = {"JobConfig": "mixopt.config", "load_job_config": "mixopt.config", "MixoptError": "mixopt.errors"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixopt' has no attribute {name!r}")
