"""Aioli: probe rounds, the interaction estimate, and weights that move on signal but never collapse."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.online import MixerError, make_mixer


def _simulate(m, eps, beta, alpha, updates, noise, seed=0, held_out=False):
    """Each domain learns from its own exposure: loss_i = eps_i + beta_i (1 + 10 e_i)^-alpha_i + noise,
    measured half-way through each interval (like a mean training loss), or at its end as ``eval_loss``
    when ``held_out``. Returns the base weights after each update."""
    rng = np.random.default_rng(seed)
    exposure, base = np.zeros(m.k), []
    for t in range(1, updates + 1):
        w = m.weights
        mid = exposure + (1.0 if held_out else 0.5) * w
        exposure += w
        loss = eps + beta * (1 + 10 * mid) ** -alpha + rng.normal(0.0, noise, m.k)
        m.update(t, loss * 1000, [1000] * m.k, eval_loss=loss if held_out else None)
        base.append(m.base_weights())
    return np.array(base)


@pytest.mark.parametrize("seed", range(4))
def test_does_not_collapse_on_a_benign_problem(seed):
    # Three domains with the same learning curve (different floors): the best mixture is near uniform, and
    # the loss changes are mostly noise. An exponentiated-gradient step that always moves by a fixed
    # amount random-walks to a corner; Aioli must stay near uniform.
    k = 3
    m = make_mixer("aioli", ["a", "b", "c"], seed=seed)
    base = _simulate(m, np.array([1.0, 1.5, 2.0]), np.full(k, 2.0), np.full(k, 0.4), 300, 0.01, seed)
    assert base.max() < 0.6 and base.min() > 0.15


def test_moves_toward_the_domain_with_more_to_learn_without_collapsing():
    # b has a larger and slower-falling reducible loss: training on it pays more, until it has caught up.
    m = make_mixer("aioli", ["a", "b", "c"], seed=0)
    base = _simulate(m, np.array([1.0, 1.0, 1.0]), np.array([1.0, 4.0, 1.0]), np.array([0.6, 0.3, 0.6]),
                     300, 0.0, held_out=True)
    assert base[:, 1].max() > 0.45
    assert base.max() < 0.9  # diminishing returns and the pull to the prior stop it before it is one-hot


def test_probe_round_schedule():
    m = make_mixer("aioli", ["a", "b", "c", "d"], warmup=1, one_hot=0.7, seed=3)
    seen = [m.update(t, [40.0, 30.0, 20.0, 10.0], [10] * 4) for t in range(1, 18)]
    assert np.allclose(seen[0], 0.25)  # warm-up: the prior
    probes = np.array(seen[1:5])  # round 1: each domain probed once, in a random order
    assert sorted(np.argmax(probes, axis=1).tolist()) == [0, 1, 2, 3]
    np.testing.assert_allclose(probes.max(axis=1), 0.7)
    np.testing.assert_allclose(np.sort(probes, axis=1)[:, :3], 0.1)
    np.testing.assert_allclose(seen[5:9], np.tile(m.base_weights(), (4, 1)))  # then p until the next round
    assert np.max(seen[9]) == pytest.approx(0.7)  # round 2 starts with a probe


def test_recovers_the_interaction_matrix_from_held_out_losses():
    a_true = np.array([[0.02, 0.0, 0.005], [0.0, 0.004, 0.0], [0.0, 0.0, 0.0]])  # c cannot be learned
    m = make_mixer("aioli", ["a", "b", "c"], forget=1.0, ridge=1e-9, warmup=0)
    loss = np.full(3, 3.0)
    for t in range(1, 25):
        loss = loss - a_true @ m.weights
        m.update(t, loss * 100, [100] * 3, eval_loss=loss)
    # identified up to a constant per row (the drop any mixture gives): compared with rows centred
    np.testing.assert_allclose(m.interaction(), a_true - a_true.mean(axis=1, keepdims=True), atol=1e-6)
    assert m.base_weights()[0] > 0.5 and m.base_weights()[2] < 0.25


@pytest.mark.parametrize("params, match", [
    ({"one_hot": 0.2}, "one_hot"),
    ({"delta": 1.0}, "delta"),
    ({"eta": -1.0}, "eta"),
    ({"forget": 0.0}, "forget"),
])
def test_bad_parameters_are_one_line_errors(params, match):
    with pytest.raises(MixerError, match=match) as e:
        make_mixer("aioli", ["a", "b", "c"], **params)
    assert "\n" not in str(e.value)
