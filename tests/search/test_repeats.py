"""``search.repeats``: every chosen mixture trained with several seeds, one run-table row per run, the
budget counting each; the GP, the trust report and the plots see the run-to-run noise."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mixopt.search import read_runs, run_search
from mixopt.search.workers import run_seed

pytestmark = pytest.mark.integration


def _noisy_train(config, data, weights, *, tokens, seed, settings, threads):
    """A stand-in proxy: losses fall with a domain's weight; the seed's noise grows with the first domain's."""
    names = list(weights)
    noise = (0.01 + 0.3 * weights[names[0]]) * np.random.default_rng(seed).standard_normal()
    loss = {d: 3.0 + (1.0 - w) + noise for d, w in weights.items()}
    return {"status": "ok", "final_loss": loss, "flops": 1e6, "wall_time": 0.01, "tokens_seen": [],
            "val_loss": {}, "reason": None}


def _by_mixture(runs):
    groups = defaultdict(list)
    for r in runs:
        groups[json.dumps(r.weights, sort_keys=True)].append(r)
    return list(groups.values())


@pytest.mark.slow  # first search of a session: Ray workers and an MLflow sqlite store start (~35 s on 2 busy cores)
def test_repeats_train_each_mixture_with_several_seeds_and_the_budget_counts_them(ray_cluster, tiny_job):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    cfg = tiny_job("repeats", search={"strategy": "random", "n_init": 2, "repeats": 2}, budget={"runs": 6})
    res = run_search(cfg, progress=False, train_fn=_noisy_train)
    runs = read_runs(cfg.job_dir / "runs.jsonl")
    assert len(runs) == 6 and res.spent["runs"] == 6 and res.budget_fraction == pytest.approx(1.0)
    groups = _by_mixture(runs)
    assert len(groups) == 3 and all(len(g) == 2 for g in groups)  # one row per run, two runs per mixture
    for g in groups:
        a, b = g
        assert a.fidelity == b.fidelity and a.source == b.source
        assert a.seed != b.seed and a.objective != b.objective  # different seeds, different losses
        for r in g:
            assert r.seed == run_seed(cfg.seed, int(r.run_id[1:]))
    assert [r.source for r in sorted(runs, key=lambda r: r.run_id)][:4] == ["init"] * 4

    # the proposal's trust report and the plots know the noise; the noise plot is logged to MLflow
    noise = res.proposal.trust["noise"]
    assert noise["n_groups"] == 3 and noise["std"] > 0
    assert "noise_by_mixture.png" in {p.name for p in res.plots}
    arts = {a.path for a in MlflowClient(cfg.tracking_uri()).list_artifacts(res.parent_run_id, "plots")}
    assert "plots/noise_by_mixture.png" in arts

    # a larger budget resumes: one more mixture, twice, with fresh seeds
    more = cfg.model_copy(deep=True)
    more.budget.runs = 8
    ext = run_search(more, progress=False, train_fn=_noisy_train)
    assert ext.new_runs == 2
    new = read_runs(cfg.job_dir / "runs.jsonl")[6:]
    assert new[0].weights == new[1].weights and new[0].seed != new[1].seed


def test_a_rebuilt_state_continues_the_design_after_the_repeated_mixtures(ray_cluster, tiny_job):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg = tiny_job("repeats-rebuild", search={"strategy": "random", "n_init": 3, "repeats": 2},
                   budget={"runs": 4}, tracking={"enabled": False})
    run_search(cfg, progress=False, train_fn=_noisy_train)
    first = read_runs(cfg.job_dir / "runs.jsonl")
    assert len(_by_mixture(first)) == 2
    (cfg.job_dir / "state.json").unlink()  # lost: rebuilt from runs.jsonl
    more = cfg.model_copy(deep=True)
    more.budget.runs = 6
    res = run_search(more, progress=False, train_fn=_noisy_train, rebuild_state=True)
    assert res.new_runs == 2
    runs = read_runs(cfg.job_dir / "runs.jsonl")
    groups = _by_mixture(runs)
    # the third design mixture, twice; neither of the first two is run again
    assert len(groups) == 3 and all(len(g) == 2 for g in groups)
    assert all(r.source == "init" for r in runs)
