"""The reducible-loss mixer: data goes where loss can still be lost; equally hard domains keep the prior."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_ado import LAWS, _feed

from mixopt.online import MixerError, OnlineMixing, make_mixer


def test_the_domain_with_the_most_loss_left_gets_the_most_data():
    # hungry: 1 + 2 (n/N0)^-0.25 still has ~0.9 nats to lose; fast: 1 + 2 (n/N0)^-1 has ~0.1; noise: none
    m = _feed(make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3, min_share=0.02), LAWS, 60,
              noise=0.002)
    w = m.weights
    assert w[0] > 0.8 and w[0] > w[1] > w[2]
    assert w[2] < 0.03  # the unlearnable domain sits at the floor
    # the reducible loss it acts on is the law's: 2 (n / N0)^-0.25 for hungry with n = all tokens so far (the
    # feed's clock); the mixer fits in the domain's own tokens, a third of n: the same curve, the same R
    assert m.predicted_progress()[0] == pytest.approx(2.0 * (m.tokens_seen / 10_000.0) ** -0.25, rel=0.1)


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
                                           ({"min_points": 1}, "min_points"),
                                           ({"max_harm": 0.0}, "max_harm")])
def test_bad_parameters_are_one_line_errors(params, match):
    with pytest.raises(MixerError, match=match) as e:
        make_mixer("reducible", ["a", "b"], **params)
    assert "\n" not in str(e.value)


def _closed_loop(m, laws, updates, n0=10_000.0):
    """Update ``m`` with each domain's loss ``eps + beta (n_k / n0)^-alpha`` at its *own* tokens ``n_k``, the
    tokens of each interval split by the mixer's current weights; returns the tokens per domain."""
    eps, beta, alpha = (np.asarray(v, dtype=float) for v in laws)
    n = np.zeros(m.k)
    for t in range(1, updates + 1):
        counts = n0 * np.asarray(m.weights)
        mid = n + counts / 2
        n += counts
        m.update(t, (eps + beta * (mid / n0) ** -alpha) * counts, counts)
    return n


def test_max_harm_keeps_learning_domains_near_the_prior_and_still_starves_noise():
    laws = ([1.0, 1.0, 2.08], [2.0, 0.6, 0.0], [0.25, 0.5, 0.0])  # hungry, a slower learner, noise
    doms = ["hungry", "learner", "noise"]
    true_loss = lambda n: laws[0][1] + laws[1][1] * (n / 10_000.0) ** -laws[2][1]  # noqa: E731 - the learner's
    harm = {}
    for cap in (None, 0.01):
        m = make_mixer("reducible", doms, warmup=3, min_share=0.0, max_harm=cap)
        n = _closed_loop(m, laws, 80)
        prior_n = n.sum() / 3  # what the uniform prior would have given each domain
        harm[cap] = true_loss(n[1]) - true_loss(prior_n)
        assert m.weights[2] < 0.05  # noise is flat: starving it costs nothing, capped or not
    assert harm[None] > 0.03  # uncapped, the learner gives up its data to the hungry domain
    assert harm[0.01] < 0.012  # capped: its own law stops the deficit at about 0.01 nats
    assert m.predicted_harm()[1] == pytest.approx(harm[0.01], rel=0.2)  # and the law predicted that harm


def test_max_harm_also_protects_a_domain_whose_loss_rises_when_its_share_falls():
    # "kept": learned early, its loss drifts up as soon as it is sampled less than the uniform prior (the
    # model must keep seeing it); a law in cumulative tokens sees it as flat, so only the rise shows it
    n0, k = 10_000.0, 3
    def run(cap):
        m = make_mixer("reducible", ["hungry", "kept", "noise"], warmup=3, min_share=0.0, max_harm=cap)
        n, kept_losses, kept_shares = np.zeros(k), [], []
        for t in range(1, 81):
            counts = n0 * np.asarray(m.weights)
            n += counts
            kept = 1.5 + 1.0 * max(0.0, 1.0 - m.weights[1] * k)
            loss = np.array([1.0 + 2.0 * (n[0] / n0) ** -0.25, kept, 2.08])
            m.update(t, loss * counts, counts)
            kept_losses.append(kept)
            kept_shares.append(m.weights[1])
        return m, np.mean(kept_losses[40:]), np.mean(kept_shares[40:])  # the second half of the run
    free, free_loss, _ = run(None)
    capped, kept_loss, kept_share = run(0.05)
    assert free.weights[1] < 0.1 and free_loss - 1.5 > 0.5  # uncapped: flat, so starved like noise
    # capped: held near the prior (the guard lets it dip and pulls it back), its loss near where it was
    assert kept_share > 0.25 and kept_loss - 1.5 < 0.1
    assert capped.weights[2] < 0.05  # the truly flat noise domain is still starved


def test_cooldown_trains_the_last_fifth_on_the_prior_and_keeps_learning():
    prior = [0.4, 0.4, 0.2]
    m = make_mixer("reducible", ["hungry", "fast", "noise"], prior, warmup=3, min_share=0.02, total_steps=100)
    start = m.weights  # the prior (with the floor: 0.02 + 0.94 x prior)
    np.testing.assert_allclose(start, 0.02 + 0.94 * np.array(prior))
    seen = {t: _feed_one(m, t) for t in range(1, 101)}
    assert seen[79][0] > 0.7  # before the last 20%: most data to the data-hungry domain
    for t in range(80, 101):  # from step 80 on (0.8 x 100): the starting mixture again
        np.testing.assert_allclose(seen[t], start, atol=1e-12)
    assert m.predicted_progress()[0] > m.predicted_progress()[1]  # its laws kept being fitted meanwhile
    # without the run's length there is no cooldown
    free = make_mixer("reducible", ["hungry", "fast", "noise"], prior, warmup=3, min_share=0.02)
    free_seen = [_feed_one(free, t) for t in range(1, 101)]
    assert min(w[0] for w in free_seen[79:]) > 0.7


def _feed_one(m, t):
    eps, beta, alpha = (np.asarray(v, dtype=float) for v in LAWS)
    counts = np.full(m.k, 10_000.0 / m.k)
    return m.update(t, (eps + beta * (t - 0.5) ** -alpha) * counts, counts)


def test_the_run_length_survives_a_checkpoint_unless_given_again():
    a = make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3, total_steps=100)
    for t in range(1, 60):
        _feed_one(a, t)
    sd = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    b = make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3)  # resumed without saying the length
    b.load_state_dict(sd)
    assert b.total_steps == 100
    for t in range(60, 101):  # the cooldown comes at the same step as in the uninterrupted run
        np.testing.assert_array_equal(_feed_one(a, t), _feed_one(b, t))
    c = make_mixer("reducible", ["hungry", "fast", "noise"], warmup=3, total_steps=200)  # the run was extended
    c.load_state_dict(sd)
    assert c.total_steps == 200
    with pytest.raises(MixerError, match="total_steps"):
        make_mixer("reducible", ["hungry", "fast", "noise"]).load_state_dict({**sd, "total_steps": -1})


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100"])
def test_a_bad_run_length_is_a_one_line_error(bad):
    with pytest.raises(MixerError, match="total_steps") as e:
        make_mixer("reducible", ["a", "b"], total_steps=bad)
    assert "\n" not in str(e.value)
    m = make_mixer("reducible", ["a", "b"])
    with pytest.raises(MixerError, match="total_steps"):
        OnlineMixing(m, total_steps=bad)
    assert m.total_steps is None  # nothing half-set
    OnlineMixing(m, total_steps=50)  # a plain loop gives the mixer the run's length this way
    assert m.total_steps == 50
    with pytest.raises(MixerError, match="cooldown"):
        make_mixer("reducible", ["a", "b"], cooldown=1.0)
