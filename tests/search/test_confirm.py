"""``search.confirm``: the proposal is trained at the end; when that run does worse than the best run the
search observed, the trust report says so and points at that run instead of the proposal."""

from __future__ import annotations

import functools
import json
import sys

import pytest

from mixopt.search import run_search
from mixopt.search.workers import run_seed

pytestmark = pytest.mark.integration


def _train(config, data, weights, *, tokens, seed, settings, threads, bad_seed):
    """A stand-in proxy: losses fall with a domain's weight, except the run with ``bad_seed`` does badly."""
    penalty = 5.0 if seed == bad_seed else 0.0
    loss = {d: 3.0 + (1.0 - w) + penalty for d, w in weights.items()}
    return {"status": "ok", "final_loss": loss, "flops": 1e6, "wall_time": 0.01, "tokens_seen": [],
            "val_loss": {}, "reason": None}


@pytest.mark.parametrize("confirm_does_badly", [True, False])
def test_a_confirmation_that_does_worse_than_the_best_run_points_the_user_at_that_run(
        ray_cluster, tiny_job, confirm_does_badly):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    cfg = tiny_job(f"confirm-{confirm_does_badly}", search={"strategy": "regmix", "n_init": 3, "confirm": True},
                   budget={"runs": 4}, tracking={"enabled": False})
    bad = run_seed(cfg.seed, 4) if confirm_does_badly else -1  # run 4 is the confirmation (after r0000-r0003)
    res = run_search(cfg, progress=False, train_fn=functools.partial(_train, bad_seed=bad))
    trust = res.proposal.trust
    best = trust["fallback"]
    assert res.proposal.context["confirm_run_id"] == "c0004"
    assert trust["confirmation"]["run_id"] == "c0004"
    assert trust["confirmation"]["observed"] == pytest.approx(res.proposal.observed, abs=1e-5)
    on_disk = json.loads((cfg.job_dir / "proposal.json").read_text())["trust"]
    assert on_disk["level"] == trust["level"] and on_disk["recommendation"] == trust["recommendation"]
    if confirm_does_badly:
        assert res.proposal.observed > best["observed"] + 4
        assert trust["level"] == "low" and not trust["needs_run"]
        assert best["run_id"] in trust["recommendation"] and "did worse when it was run" in trust["recommendation"]
        assert any("confirmation run c0004" in w for w in trust["warnings"])
    else:
        assert not any("confirmation run" in w for w in trust["warnings"])
        assert "did worse when it was run" not in trust["recommendation"]


def test_confirm_switch_proposes_the_best_run_when_the_confirmation_does_worse(ray_cluster, tiny_job):
    """``confirm: switch``: a confirmation that does worse hands the proposal to the best observed run (the
    model's mixture and its confirmation stay in the context); a job confirmed under ``confirm: true`` switches
    when it is resumed with ``switch``; a confirmation that does well leaves the proposal alone."""
    import ray.cloudpickle

    from mixopt.search.report import format_proposal

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg = tiny_job("confirm-switch", search={"strategy": "regmix", "n_init": 3, "confirm": True},
                   budget={"runs": 4}, tracking={"enabled": False})
    train = functools.partial(_train, bad_seed=run_seed(cfg.seed, 4))
    warned = run_search(cfg, progress=False, train_fn=train).proposal
    assert warned.trust["confirmation"]["worse"] and "unconfirmed" not in warned.context

    cfg.search.confirm = "switch"  # same job, resumed: nothing to train, the stored check decides
    res = run_search(cfg, progress=False, train_fn=train)
    p, fb = res.proposal, warned.trust["fallback"]
    assert p.weights == pytest.approx(fb["weights"]) and p.run_id == fb["run_id"] and p.rule == "revealed"
    assert p.observed == pytest.approx(fb["observed"])
    assert p.context["unconfirmed"]["weights"] == pytest.approx(warned.weights)
    assert p.context["unconfirmed"]["observed"] == pytest.approx(warned.observed)
    assert warned.observed > p.observed + 4
    assert p.trust["level"] == "medium" and len(p.trust["warnings"]) == len(warned.trust["warnings"])
    assert sum(r.source == "confirm" for r in res.runs) == 1  # the confirmation was not trained again
    on_disk = json.loads((cfg.job_dir / "proposal.json").read_text())
    assert on_disk["weights"] == pytest.approx(fb["weights"]) and on_disk["run_id"] == fb["run_id"]
    text = format_proposal(p)
    assert f"best run observed ({fb['run_id']})" in text and "instead of the model's mixture" in text

    good = tiny_job("confirm-switch-good", search={"strategy": "regmix", "n_init": 3, "confirm": "switch"},
                    budget={"runs": 4}, tracking={"enabled": False})
    kept = run_search(good, progress=False, train_fn=functools.partial(_train, bad_seed=-1)).proposal
    confirm_run = next(r for r in run_search(good, progress=False, train_fn=_train_never).runs if r.source == "confirm")
    assert kept.weights == pytest.approx(confirm_run.weights) and "unconfirmed" not in kept.context


def _train_never(*args, **kwargs):
    raise AssertionError("a finished job trained again")


def test_confirming_the_best_run_itself_is_a_repeat_not_a_worse_mixture(ray_cluster, tiny_job):
    """A ``revealed`` proposal is the best run's own mixture: its confirmation doing badly is that mixture's
    run-to-run noise, so neither the trust report nor ``switch`` treats it as a worse mixture."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg = tiny_job("confirm-revealed", search={"strategy": "regmix", "n_init": 3, "confirm": "switch",
                                               "recommend": "revealed"},
                   budget={"runs": 4}, tracking={"enabled": False})
    res = run_search(cfg, progress=False, train_fn=functools.partial(_train, bad_seed=run_seed(cfg.seed, 4)))
    p = res.proposal
    assert p.rule == "revealed" and p.weights == pytest.approx(p.trust["fallback"]["weights"])
    assert p.observed > p.trust["fallback"]["observed"] + 4  # the confirmation did badly ...
    assert p.trust["confirmation"]["worse"] is False and "unconfirmed" not in p.context  # ... and is a repeat
    assert not any("confirmation run" in w for w in p.trust["warnings"])
