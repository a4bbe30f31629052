"""Mixture weights: check a user's weights and put them on the simplex.

>>> validate_weights({"code": 1, "prose": 3}, ["code", "prose"])
array([0.25, 0.75])
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixopt.errors import DataError

__all__ = ["validate_weights"]

log = logging.getLogger(__name__)

_SUM_TOL = 1e-6


def validate_weights(weights: Any, domains: Sequence[str]) -> np.ndarray:
    """Return ``weights`` as a ``(k,)`` float64 vector on the simplex, in ``domains`` order.

    ``weights`` is a mapping ``{domain: weight}`` (domains left out get weight 0) or a sequence/array of
    length ``k``. Raises a one-line :class:`DataError` on unknown domain names, wrong length, negative,
    NaN/inf or all-zero weights. Weights whose sum is not 1 (beyond 1e-6) are renormalised with a warning.
    """
    domains = list(domains)
    k = len(domains)
    if isinstance(weights, Mapping):
        unknown = sorted(set(map(str, weights)) - set(domains))
        if unknown:
            raise DataError(f"weights name unknown domain(s) {unknown}; domains are {domains}")
        values = [weights.get(d, 0.0) for d in domains]
    else:
        if hasattr(weights, "detach"):  # torch tensor
            weights = weights.detach().cpu().numpy()
        values = list(np.asarray(weights, dtype=object).reshape(-1)) if np.ndim(weights) else [weights]
        if len(values) != k:
            raise DataError(f"weights have length {len(values)} but there are {k} domains {domains}")
    try:
        w = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"weights must be numbers, got {values!r}") from None
    bad = ~np.isfinite(w)
    if bad.any():
        raise DataError(f"weight of domain {domains[int(np.argmax(bad))]!r} is {w[bad][0]} (must be finite)")
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise DataError(f"weight of domain {domains[i]!r} is negative ({w[i]:g})")
    total = float(w.sum())
    if total <= 0:
        raise DataError(f"weights are all zero for domains {domains}")
    if abs(total - 1.0) > _SUM_TOL:
        msg = f"weights sum to {total:.6g}, not 1; renormalising"
        warnings.warn(msg, UserWarning, stacklevel=2)
        log.warning(msg)
    return w / total
