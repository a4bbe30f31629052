"""Name -> surrogate class. A new surrogate is one file plus one line here."""

from __future__ import annotations

from mixopt.registry import Registry

__all__ = ["SURROGATES", "available_surrogates", "make_surrogate", "surrogate_class", "surrogate_name"]

SURROGATES = Registry("surrogate")
SURROGATES.add("linear", "mixopt.surrogates.linear:LinearSurrogate")
SURROGATES.add("lightgbm", "mixopt.surrogates.gbm:LightGBMSurrogate")
SURROGATES.add("mixing_law", "mixopt.surrogates.mixing_law:MixingLawSurrogate")
SURROGATES.add("bimix", "mixopt.surrogates.bimix:BiMixSurrogate")
SURROGATES.add("gp", "mixopt.surrogates.gp:GPSurrogate")
SURROGATES.add("auto", "mixopt.surrogates.auto:AutoSurrogate")


def available_surrogates() -> list[str]:
    """Registered surrogate names."""
    return SURROGATES.names()


def surrogate_class(name: str) -> type:
    """The class registered under ``name``; :class:`MixoptError` for an unknown name."""
    return SURROGATES.get(name)


def make_surrogate(name: str, **params):
    """Build an (unfitted) surrogate by name, e.g. ``make_surrogate("lightgbm", random_state=0)``.

    Unknown parameters raise a one-line :class:`MixoptError` naming the accepted ones.
    """
    return SURROGATES.create(name, **params)


def surrogate_name(surrogate) -> str:
    """Registry name of a fitted surrogate (``"auto->lightgbm"`` for a fitted ``auto``)."""
    cls = type(surrogate)
    name = next((n for n in SURROGATES.names() if SURROGATES.get(n) is cls), cls.__name__)
    chosen = getattr(surrogate, "chosen_", None)
    return f"{name}->{chosen}" if chosen else name
