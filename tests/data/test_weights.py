"""validate_weights: dicts, sequences and tensors onto the simplex; one-line errors on bad weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixopt.data import validate_weights
from mixopt.errors import DataError

DOMAINS = ["code", "prose", "noise"]


def test_dict_in_domain_order_missing_domains_get_zero():
    w = validate_weights({"noise": 0.25, "code": 0.75}, DOMAINS)
    assert w.dtype == np.float64 and w.shape == (3,)
    np.testing.assert_allclose(w, [0.75, 0.0, 0.25])


def test_sequence_and_tensor():
    np.testing.assert_allclose(validate_weights([0.2, 0.3, 0.5], DOMAINS), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(validate_weights(torch.tensor([0.2, 0.3, 0.5]), DOMAINS), [0.2, 0.3, 0.5], atol=1e-7)


def test_sum_off_is_renormalised_with_a_warning():
    with pytest.warns(UserWarning, match="sum to 4"):
        w = validate_weights([1, 1, 2], DOMAINS)
    np.testing.assert_allclose(w, [0.25, 0.25, 0.5])


@pytest.mark.parametrize(
    "weights, message",
    [
        ([0.5, -0.1, 0.6], "domain 'prose' is negative"),
        ([0.5, float("nan"), 0.5], "domain 'prose' is nan"),
        ([0.5, 0.5, float("inf")], "domain 'noise' is inf"),
        ([0, 0, 0], "all zero"),
        ([0.5, 0.5], "length 2 but there are 3 domains"),
        ({"code": 1.0, "poetry": 1.0}, "unknown domain.*poetry"),
        (["a", "b", "c"], "must be numbers"),
    ],
)
def test_bad_weights_are_one_line_errors(weights, message):
    with pytest.raises(DataError, match=message) as err:
        validate_weights(weights, DOMAINS)
    assert "\n" not in str(err.value)
