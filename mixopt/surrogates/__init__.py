"""Surrogates: mixture (+ fidelity) -> predicted loss, one estimator contract (see ``docs/surrogates.md``).

>>> from mixopt.surrogates import make_surrogate, available_surrogates
>>> sorted(available_surrogates())[:3]
['auto', 'bimix', 'gp']
"""

from mixopt.surrogates.base import Surrogate, split_X, validate_weights_matrix, validate_y
from mixopt.surrogates.registry import (
    SURROGATES,
    available_surrogates,
    make_surrogate,
    surrogate_class,
    surrogate_name,
)
from mixopt.surrogates.scaling import StepLaw, extrapolate, fit_step_law, nested_extrapolate
from mixopt.surrogates.table_model import SurrogateInputs, TableModel, fit_model, surrogate_inputs

__all__ = [
    "SURROGATES",
    "StepLaw",
    "Surrogate",
    "SurrogateInputs",
    "TableModel",
    "available_surrogates",
    "extrapolate",
    "fit_model",
    "fit_step_law",
    "make_surrogate",
    "nested_extrapolate",
    "split_X",
    "surrogate_class",
    "surrogate_inputs",
    "surrogate_name",
    "validate_weights_matrix",
    "validate_y",
]
