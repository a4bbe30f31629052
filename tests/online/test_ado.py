"""ADO: the per-domain scaling laws it fits, and weights that follow the predicted loss decrease."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.online import MixerError, make_mixer

N0 = 10_000.0  # tokens per update interval in these simulations


def _feed(m, laws, updates, noise=0.0, seed=0):
    """Update ``m`` with mean losses ``eps + beta (n / N0)^-alpha`` (``n`` = total tokens at the middle of
    each interval, every domain getting the same tokens), plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    eps, beta, alpha = (np.asarray(v, dtype=float) for v in laws)
    counts = np.full(m.k, N0 / m.k)
    for t in range(1, updates + 1):
        n_mid = (t - 0.5) * N0
        loss = eps + beta * (n_mid / N0) ** -alpha + rng.normal(0.0, noise, m.k)
        m.update(t, loss * counts, counts)
    return m


LAWS = ([1.0, 1.0, 2.08], [2.0, 2.0, 0.0], [0.25, 1.0, 0.0])  # data-hungry, fast-saturating, noise


def test_law_fit_recovers_known_parameters():
    m = _feed(make_mixer("ado", ["hungry", "fast", "noise"], warmup=3, count="total"), LAWS, 80, noise=0.002)
    law = m.law()
    n0 = law.n0  # the law is stored relative to the first fitted interval
    np.testing.assert_allclose(law.eps[:2], [1.0, 1.0], atol=0.06)
    np.testing.assert_allclose(law.alpha[:2], [0.25, 1.0], rtol=0.1)
    np.testing.assert_allclose(law.beta[:2] * (n0[:2] / N0) ** law.alpha[:2], [2.0, 2.0], rtol=0.1)


@pytest.mark.parametrize("count", ["total", "domain"])
def test_weights_follow_predicted_progress(count):
    m = _feed(make_mixer("ado", ["hungry", "fast", "noise"], warmup=3, min_share=0.02, count=count), LAWS, 60)
    n = m.tokens_seen if count == "total" else m.tokens_seen / 3  # every domain gets a third here
    scale = 1.0 if count == "total" else 3.0  # n_total = 3 n_domain: the loss falls 3x faster per own token
    true = np.array([scale * a * b * (scale * n / N0) ** -a / (scale * n)
                     for a, b in zip(LAWS[2], LAWS[1], strict=True)])
    np.testing.assert_allclose(m.predicted_progress()[:2], true[:2], rtol=0.15)
    w = m.weights
    assert w[0] > w[1] > w[2]  # the domain still learning gets the most, the unlearnable one the least
    assert w[2] < 0.05
    assert w[0] > 0.6


def test_flat_curves_keep_the_prior_and_warmup_keeps_it_too():
    m = make_mixer("ado", ["a", "b", "c"], {"a": 0.5, "b": 0.3, "c": 0.2}, warmup=4, min_share=0.0)
    for t in range(1, 5):
        np.testing.assert_allclose(m.update(t, [400.0, 300.0, 200.0], [100] * 3), [0.5, 0.3, 0.2])
    _feed(m, ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]), 30)  # identical curves: prior, tempered
    w = m.weights
    assert w[0] > w[1] > w[2]  # ADO tempers by the prior: equal progress keeps the prior's order


@pytest.mark.parametrize("params, match", [
    ({"gamma1": 0.0}, "gamma1"),
    ({"min_points": 1}, "min_points"),
    ({"count": "tokens"}, "count"),
    ({"score": "loss"}, "score"),
    ({"reference": {"zzz": 1.0}}, "unknown domain"),
])
def test_bad_parameters_are_one_line_errors(params, match):
    with pytest.raises(MixerError, match=match) as e:
        make_mixer("ado", ["a", "b"], **params)
    assert "\n" not in str(e.value)
