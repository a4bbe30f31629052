"""Name -> surrogate class. A new surrogate is one file plus one line in ``_REGISTRY``."""

from __future__ import annotations

import importlib
import inspect

from mixopt.errors import MixoptError

__all__ = ["available_surrogates", "make_surrogate", "surrogate_class"]

_REGISTRY = {
    "linear": "mixopt.surrogates.linear:LinearSurrogate",
    "lightgbm": "mixopt.surrogates.gbm:LightGBMSurrogate",
    "mixing_law": "mixopt.surrogates.mixing_law:MixingLawSurrogate",
    "bimix": "mixopt.surrogates.bimix:BiMixSurrogate",
    "gp": "mixopt.surrogates.gp:GPSurrogate",
    "auto": "mixopt.surrogates.auto:AutoSurrogate",
}


def available_surrogates() -> list[str]:
    """Registered surrogate names."""
    return list(_REGISTRY)


def surrogate_class(name: str) -> type:
    """The class registered under ``name``; :class:`MixoptError` for an unknown name."""
    if name not in _REGISTRY:
        raise MixoptError(f"unknown surrogate {name!r}; available: {', '.join(_REGISTRY)}")
    mod, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def make_surrogate(name: str, **params):
    """Build an (unfitted) surrogate by name, e.g. ``make_surrogate("lightgbm", random_state=0)``.

    Unknown parameters raise a one-line :class:`MixoptError` naming the accepted ones.
    """
    cls = surrogate_class(name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise MixoptError(f"surrogate {name!r}: unknown parameter(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(**params)
