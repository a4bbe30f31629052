"""The reducible-loss mixer: data goes where loss can still be lost; equally hard domains keep the prior."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_ado import LAWS, _feed

from mixopt.online import MixerError, make_mixer


def test_the_domain_with_the_most_loss_left_gets_the_most_data():
    # hungry: 1 + 2 (n/N0)^-0.25 still has ~0.9 nats to lose; fast: 1 + 2 (n/N0)^-1 has ~0.1; noise: none
    m = _feed(make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3, min_share=0.02), LAWS, 60,
              noise=0.002)
    w = m.weights
    assert w[0] > 0.8 and w[0] > w[1] > w[2]
    assert w[2] < 0.03  # the unlearnable domain sits at the floor
    # the reducible loss it acts on is the law's: about 2 (n / N0)^-0.25 for hungry, n = its own tokens
    n_own = m.tokens_seen / 3
    assert m.predicted_progress()[0] == pytest.approx(2.0 * (n_own / 10_000.0) ** -0.25, rel=0.2)


@pytest.mark.parametrize("seed", range(4))
def test_equally_hard_domains_keep_the_prior(seed):
    prior = {"a": 0.5, "b": 0.3, "c": 0.2}
    m = make_mixer("reducible", list(prior), prior, warmup=3, min_share=0.0)
    _feed(m, ([1.0] * 3, [2.0] * 3, [0.5] * 3), 60, noise=0.01, seed=seed)  # same law, independent noise
    assert np.abs(m.weights - np.array(list(prior.values()))).max() < 0.1


def test_state_round_trip_continues_identically():
    a = _feed(make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3), LAWS, 20, noise=0.01)
    b = make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict(), allow_nan=False)))
    for t in range(21, 30):
        loss = np.array([1.5, 1.1, 2.08]) * 1000
        np.testing.assert_array_equal(a.update(t, loss, [1000] * 3), b.update(t, loss, [1000] * 3))


@pytest.mark.parametrize("params, match", [({"alpha_min": 0.0}, "alpha_min"), ({"smooth": 1.5}, "smooth"),
                                           ({"min_points": 1}, "min_points")])
def test_bad_parameters_are_one_line_errors(params, match):
    with pytest.raises(MixerError, match=match) as e:
        make_mixer("reducible", ["a", "b"], **params)
    assert "\n" not in str(e.value)
