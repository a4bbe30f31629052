"""The online power-law fit behind ADO and reference curves: known laws come back out of noisy curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixopt.online.power_law import PowerLawFit, fit_power_law


def _curves(n, rng, noise=0.005):
    """Three domains: a data-hungry law, a fast one, and a flat (unlearnable) one, with Gaussian noise."""
    x = n / n[0]
    y = np.stack([1.5 + 2.0 * x**-0.3, 3.0 + 0.5 * x**-0.8, np.full_like(n, 2.08)], axis=1)
    return y + rng.normal(0.0, noise, y.shape)


def test_fit_recovers_known_parameters_from_noisy_curves():
    n = np.geomspace(2e4, 2e6, 60)
    law = fit_power_law(n, _curves(n, np.random.default_rng(0)))
    np.testing.assert_allclose(law.eps[:2], [1.5, 3.0], atol=0.05)
    np.testing.assert_allclose(law.beta[:2], [2.0, 0.5], rtol=0.08)
    np.testing.assert_allclose(law.alpha[:2], [0.3, 0.8], rtol=0.08)
    slope = law.slope(1e6)
    assert slope[0] > slope[1] > slope[2] >= 0  # the data-hungry law still falls fastest at 1M tokens
    assert slope[2] < 0.01 * slope[0] and abs(law.loss(1e6)[2] - 2.08) < 0.01  # flat: no predicted progress


def test_as_tokens_gives_the_same_curve_in_raw_tokens():
    n = np.geomspace(1e4, 1e6, 30)
    law = fit_power_law(n, 1.0 + 4.0 * (n / 1e4) ** -0.5)
    t = law.as_tokens()
    for m in (3e4, 5e5, 4e6):
        np.testing.assert_allclose(t["E"] + t["B"] * m ** -t["beta"], law.loss(m), rtol=1e-9)
    np.testing.assert_allclose(law.loss(1e6), 1.0 + 4.0 * 100**-0.5, rtol=0.02)


def test_online_fit_matches_batch_fit_and_round_trips():
    n = np.geomspace(1e4, 1e6, 40)
    y = _curves(n, np.random.default_rng(1))
    a, b = PowerLawFit(3), PowerLawFit(3)
    for t in range(20):
        a.add(n[t], y[t])
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for t in range(20, 40):
        a.add(n[t], y[t])
        b.add(n[t], y[t])
    np.testing.assert_array_equal(a.solve().alpha, b.solve().alpha)
    np.testing.assert_allclose(a.solve().eps, fit_power_law(n, y).eps, rtol=1e-9)


def test_missing_points_and_per_domain_token_counts():
    fit = PowerLawFit(2)
    for i in range(1, 30):
        n = np.array([1000.0 * i, 3000.0 * i])  # domain 1 gets three times the tokens
        fit.add(n, [2 + (i * 1.0) ** -0.5, np.nan if i % 2 else 1 + (i * 1.0) ** -0.5])
    law = fit.solve()
    assert law.points.tolist() == [29, 14]
    np.testing.assert_allclose(law.alpha, [0.5, 0.5], rtol=0.08)
    assert law.n0.tolist() == [1000.0, 6000.0]
    assert np.isnan(PowerLawFit(1).solve().alpha[0])  # nothing seen: no law


@pytest.mark.parametrize("forget", [0.0, -0.5, 1.5])
def test_forget_must_be_in_range(forget):
    from mixopt.online import MixerError

    with pytest.raises(MixerError, match="forget"):
        PowerLawFit(2, forget=forget)
