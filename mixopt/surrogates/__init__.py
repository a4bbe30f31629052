"""Surrogates: mixture (+ fidelity) -> predicted loss, one estimator contract (see ``docs/surrogates.md``).

>>> from mixopt.surrogates import make_surrogate, available_surrogates
>>> sorted(available_surrogates())[:3]
['auto', 'bimix', 'gp']
"""

from mixopt.surrogates.base import Surrogate, split_X, validate_weights_matrix, validate_y
from mixopt.surrogates.registry import available_surrogates, make_surrogate, surrogate_class
from mixopt.surrogates.scaling import StepLaw, extrapolate, fit_step_law, nested_extrapolate

__all__ = [
    "StepLaw",
    "Surrogate",
    "available_surrogates",
    "extrapolate",
    "fit_step_law",
    "make_surrogate",
    "nested_extrapolate",
    "split_X",
    "surrogate_class",
    "validate_weights_matrix",
    "validate_y",
]
