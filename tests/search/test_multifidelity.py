"""A multi-fidelity search end to end: cheap and target proxies in one job, one proposal at the target."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from mixopt.config import FidelitySettings
from mixopt.search import read_runs, run_search

pytestmark = pytest.mark.integration


def test_two_fidelity_bo_search_runs_both_fidelities_and_proposes_at_the_target(ray_cluster, tiny_job):
    fidelities = [{"preset": "dense-tiny", "tokens": 4096}, {"preset": "dense-tiny", "tokens": 16_384}]
    cfg = tiny_job("multifid", proxy={"fidelities": [FidelitySettings(**f) for f in fidelities]}, search={"strategy": "bo", "n_init": 3},
                   budget={"runs": 6})
    res = run_search(cfg, progress=False)

    runs = read_runs(cfg.job_dir / "runs.jsonl")
    assert len(runs) == 6 and all(r.ok for r in runs)
    # every run trained at the preset and token budget of the fidelity it was launched at
    for r in runs:
        assert (r.preset, r.tokens) == (fidelities[r.fidelity]["preset"], fidelities[r.fidelity]["tokens"])
    # bo spends part of its design on the cheap fidelity and keeps runs at the target fidelity
    assert {r.fidelity for r in runs} == {0, 1}
    # cheap runs cost less (FLOPs recorded per run), so the budget accounting can tell them apart
    flops = {r.fidelity: r.flops for r in runs}
    assert flops[0] < flops[1]

    p = res.proposal
    assert p.context["fidelity"] == {"preset": "dense-tiny", "tokens": 16_384}
    assert sum(p.weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert math.isfinite(p.predicted) and p.rule == "predicted" and p.surrogate == "gp"
    # the best observed run is taken at the target fidelity
    best = p.baselines["best_run"]
    target_runs = {r.run_id: r for r in runs if r.fidelity == 1}
    assert best["at_target"] and best["run_id"] in target_runs
    assert best["observed"] == pytest.approx(min(r.objective for r in target_runs.values()))

    client = MlflowClient(cfg.tracking_uri())
    exp = client.get_experiment_by_name(cfg.experiment_name())
    kids = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{res.parent_run_id}'")
    assert sorted(int(k.data.params["tokens"]) for k in kids) == sorted(r.tokens for r in runs)

    # the acquisition prices levels by each run's FLOPs (the same on any load), or by wall seconds on request
    import dataclasses

    import numpy as np

    from mixopt.feasible import Constraints
    from mixopt.objective import Objective
    from mixopt.search.space import SearchSpace

    domains = list(runs[0].weights)
    k = len(domains)
    space = SearchSpace(domains, np.full(k, 1 / k), np.ones(k), np.array([[4096.0, 1.0], [16384.0, 1.0]]),
                        np.array([1.0, 4.0]), Constraints().resolve(domains, prior=np.full(k, 1 / k)),
                        Objective.parse("mean"))
    assert cfg.search.cost_unit == "flops"
    np.testing.assert_allclose(space.table(runs).cost, [r.flops for r in runs])
    by_time = dataclasses.replace(space, cost_unit="seconds").table(runs)
    np.testing.assert_allclose(by_time.cost, [r.wall_time for r in runs])
