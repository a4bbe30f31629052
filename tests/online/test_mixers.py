"""Update rules on hand-computed cases, simplex + floor, state round trip, robustness to noise domains."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.online import MixerError, available_mixers, make_mixer
from mixopt.online.odm import exploration_rate

ALL = ["stratified", "static", "odm", "exp3", "aioli", "progress", "ado", "reducible"]


def test_registry_names_and_default_alias():
    assert set(ALL) <= set(available_mixers())
    assert "default" in available_mixers()
    assert type(make_mixer("default", ["a", "b"])).__name__ == "ReducibleMixer"


def test_unknown_mixer_and_params_are_one_line_errors():
    with pytest.raises(MixoptError, match="unknown mixer 'nope'"):
        make_mixer("nope", ["a"])
    with pytest.raises(MixerError, match="mixer .odm.: unknown parameter.*bogus"):
        make_mixer("odm", ["a", "b"], bogus=1)
    with pytest.raises(MixerError, match="min_share"):
        make_mixer("progress", ["a", "b"], min_share=0.6)
    with pytest.raises(MixerError, match="unknown domain"):
        make_mixer("static", ["a", "b"], {"a": 1.0, "zzz": 1.0})


def test_update_input_validation():
    m = make_mixer("odm", ["a", "b"])
    with pytest.raises(MixerError, match="length 2"):
        m.update(1, [1.0, 2.0, 3.0], [1, 1, 1])
    with pytest.raises(MixerError, match=">= 0"):
        m.update(1, [1.0, 2.0], [1, -1])
    assert m.n_updates == 0


def test_static_and_stratified():
    s = make_mixer("static", ["a", "b", "c"], {"a": 2, "b": 1, "c": 1})
    np.testing.assert_allclose(s.update(5, [9, 9, 9], [1, 1, 1]), [0.5, 0.25, 0.25])
    u = make_mixer("stratified", ["a", "b", "c"], {"a": 2, "b": 1, "c": 1})
    np.testing.assert_allclose(u.weights, [1 / 3] * 3)
    np.testing.assert_allclose(u.update(5, [9, 0, 9], [1, 0, 1]), [1 / 3] * 3)


def test_exploration_rate():
    assert exploration_rate(1, 2) == 0.5  # min(1/2, sqrt(ln2 / 2) = 0.589)
    assert exploration_rate(2, 2) == pytest.approx(math.sqrt(math.log(2) / 4))
    assert exploration_rate(100, 4) == pytest.approx(math.sqrt(math.log(4) / 400))


def test_odm_as_run_hand_computed():
    m = make_mixer("odm", ["a", "b"], alpha=0.5)
    # Mean losses 1 and 2 nats (sums over 10 tokens).
    np.testing.assert_allclose(m.update(1, [10, 20], [10, 10]), [0.5, 0.5])  # eps_1 = 1/K: uniform
    # t=2: R = (e, e^2) unchanged by the average; eps = sqrt(ln 2 / 4) = 0.41628
    eps = 0.416277
    expect = (1 - 2 * eps) * np.array([math.e, math.e**2]) / (math.e + math.e**2) + eps
    np.testing.assert_allclose(m.update(2, [10, 20], [10, 10]), expect, rtol=1e-5)
    # t=3, b now at 0 nats: R_b = 0.5 e^2 + 0.5 e^0
    rb = 0.5 * math.e**2 + 0.5
    eps3 = math.sqrt(math.log(2) / 6)
    expect = (1 - 2 * eps3) * np.array([math.e, rb]) / (math.e + rb) + eps3
    np.testing.assert_allclose(m.update(3, [10, 0], [10, 10]), expect, rtol=1e-9)


def test_exp3_importance_weighted_hand_computed():
    m = make_mixer("exp3", ["a", "b"], alpha=0.5)
    np.testing.assert_allclose(m.update(1, [10, 20], [10, 10]), [0.5, 0.5])  # R = (1, 2); eps_1 = 1/2
    # R = 0.5 (1, 2) + 0.5 (1, 2) / 0.5 = (1.5, 3); softmax(eps_1 R) with eps_1 = 0.5; eps_2 = 0.41628
    z = np.exp([0.75, 1.5])
    eps2 = math.sqrt(math.log(2) / 4)
    expect = (1 - 2 * eps2) * z / z.sum() + eps2
    np.testing.assert_allclose(m.update(2, [10, 20], [10, 10]), expect, rtol=1e-9)


def test_progress_hand_computed():
    m = make_mixer("progress", ["noise", "text"], warmup=1, momentum=1.0, min_share=0.0, temperature=1.0,
                   per_token=False)
    np.testing.assert_allclose(m.update(1, [50, 50], [10, 10]), [0.5, 0.5])  # warm-up: prior, not averaged
    np.testing.assert_allclose(m.update(2, [40, 40], [10, 10]), [0.5, 0.5])  # first look: no progress yet
    # text 4.0 -> 3.0: fast = 3.5, slow = 3.9 -> progress 0.4; noise 0 -> target ∝ (1, e)
    np.testing.assert_allclose(m.update(3, [40, 30], [10, 10]), [1 / (1 + math.e), math.e / (1 + math.e)])
    np.testing.assert_allclose(m.scores(), [0.0, 0.4])


def test_progress_momentum_floor_and_reference():
    m = make_mixer("progress", ["a", "b"], warmup=0, momentum=0.5, min_share=0.1, temperature=2.0,
                   reference_loss={"a": 1.0, "b": 3.0})
    m.update(1, [30, 30], [10, 10])  # excess a = 2, b = 0 -> target ∝ (e^2, 1)
    t = np.array([math.e**2, 1.0]) / (math.e**2 + 1)
    smooth = 0.5 * np.array([0.5, 0.5]) + 0.5 * t
    np.testing.assert_allclose(m.weights, 0.1 + 0.8 * smooth)


def _random_updates(m, n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for step in range(1, n + 1):
        counts = rng.integers(0, 50, size=m.k).astype(float)
        counts[rng.integers(m.k)] = 0.0  # some domain is never observed in an interval
        sums = counts * rng.uniform(0.5, 6.0, size=m.k)
        out.append(m.update(step * 10, sums, counts, eval_loss=None if step % 3 else rng.uniform(1, 5, m.k)))
    return np.array(out)


@pytest.mark.parametrize("name", ALL)
def test_weights_stay_on_simplex_with_floor(name):
    m = make_mixer(name, ["a", "b", "c", "d"], seed=3, min_share=0.05)
    w = _random_updates(m, 60, seed=1)
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert w.min() >= 0.05 - 1e-12


@pytest.mark.parametrize("name", ALL)
def test_interval_with_no_tokens_keeps_weights_valid(name):
    m = make_mixer(name, ["a", "b", "c"], min_share=0.1)
    m.update(10, [30, 20, 10], [10, 10, 10])
    m.update(20, [30, 20, 10], [10, 10, 10])
    before = m.weights
    w = m.update(30, [0, 0, 0], [0, 0, 0])  # e.g. a rank that saw no batch, or a skipped interval
    assert np.all(np.isfinite(w)) and w.min() >= 0.1 - 1e-12
    np.testing.assert_allclose(w.sum(), 1.0)
    if name in ("odm", "stratified", "static"):
        np.testing.assert_allclose(w, before, atol=0.05)  # nothing observed: at most the exploration decays


@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_continues_identically(name):
    a = make_mixer(name, ["a", "b", "c"], seed=7)
    _random_updates(a, 12, seed=2)
    sd = json.loads(json.dumps(a.state_dict()))  # JSON-able, as written into checkpoints
    b = make_mixer(name, ["a", "b", "c"], seed=999)
    b.load_state_dict(sd)
    np.testing.assert_array_equal(b.weights, a.weights)
    np.testing.assert_array_equal(_random_updates(a, 12, seed=5), _random_updates(b, 12, seed=5))


@pytest.mark.parametrize("name", ALL)
def test_a_domain_never_observed_still_gives_strict_json_state(name):
    a = make_mixer(name, ["a", "b", "c"], seed=7)
    for step in range(1, 9):  # domain c never gets a token: its statistics stay NaN
        a.update(step, [2.0 * 10, 3.0 * 10, 0.0], [10, 10, 0])
    sd = json.loads(json.dumps(a.state_dict(), allow_nan=False))  # checkpoints are strict JSON
    b = make_mixer(name, ["a", "b", "c"], seed=999)
    b.load_state_dict(sd)
    np.testing.assert_array_equal(_random_updates(a, 6, seed=5), _random_updates(b, 6, seed=5))


def test_fractional_domain_ids_are_refused_not_truncated():
    from mixopt.online import OnlineMixing

    mixing = OnlineMixing(make_mixer("default", ["a", "b"]), None, update_every=1)
    with pytest.raises(MixerError, match="whole numbers"):
        mixing.observe([2.0, 3.0], [0, 0.5])
    mixing.observe([2.0, 3.0], [0.0, 1.0])  # whole numbers in a float array are fine


def test_state_of_other_mixer_is_rejected():
    with pytest.raises(MixerError, match="cannot load state"):
        make_mixer("odm", ["a", "b"]).load_state_dict(make_mixer("exp3", ["a", "b"]).state_dict())


def test_deterministic_given_seed():
    w1 = _random_updates(make_mixer("aioli", ["a", "b", "c"], seed=4), 20, seed=0)
    w2 = _random_updates(make_mixer("aioli", ["a", "b", "c"], seed=4), 20, seed=0)
    np.testing.assert_array_equal(w1, w2)


def _curves(step):
    """Mean losses of (noise, text, code) at a step: noise is flat and high, the others keep falling."""
    return np.array([5.0 + 0.01 * math.sin(step), 2.0 + 2.0 * math.exp(-step / 300),
                     1.5 + math.exp(-step / 150)])


def test_odm_chases_unlearnable_domain_and_default_does_not():
    doms = ["noise", "text", "code"]
    odm, default = make_mixer("odm", doms), make_mixer("default", doms)
    for step in range(10, 1010, 10):
        loss = _curves(step)
        counts = np.full(3, 1000.0)
        odm.update(step, loss * counts, counts)
        default.update(step, loss * counts, counts)
    assert odm.weights[0] > 0.6  # loss-chasing pours samples into noise
    assert default.weights[0] < 0.15 and default.weights[0] == default.weights.min()  # near its floor 1/12
    assert default.weights[1] > 0.4  # the slowest-learning, still improving domain gets the most


@pytest.mark.parametrize("name", ALL)
def test_a_state_with_missing_keys_is_a_one_line_error_and_changes_nothing(name):
    a = make_mixer(name, ["a", "b", "c"], seed=7)
    _random_updates(a, 8, seed=2)
    before = a.state_dict()
    for key in ("weights", "rng", "state"):
        sd = json.loads(json.dumps(a.state_dict()))
        del sd[key]
        with pytest.raises(MixerError, match=f"missing {key}"):
            a.load_state_dict(sd)
    assert a.state_dict() == before
