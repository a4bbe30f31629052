"""The search loop end to end: real Ray (the session's `ray_cluster`), real proxies, real MLflow sqlite."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from mixopt.cli import main
from mixopt.data import load_prepared
from mixopt.online import make_mixer
from mixopt.replay import Pool, replay
from mixopt.search import SearchSpace, read_runs, run_search
from mixopt.search.workers import run_seed

pytestmark = pytest.mark.integration


def write_job(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def _children(cfg, parent_run_id: str):
    client = MlflowClient(cfg.tracking_uri())
    exp = client.get_experiment_by_name(cfg.experiment_name())
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def test_tiny_search_end_to_end_then_resume_and_extend(ray_cluster, tiny_job, tmp_path, capsys):
    cfg = tiny_job("e2e", search={"strategy": "bo", "n_init": 3}, budget={"runs": 4}, proxy={"eval_points": 3})
    res = run_search(cfg, progress=False)
    runs = read_runs(cfg.job_dir / "runs.jsonl")
    assert len(runs) == 4
    assert sorted(r.run_id for r in runs) == [f"r{i:04d}" for i in range(4)]
    assert all(r.ok and math.isfinite(r.objective) for r in runs)
    assert [r.source for r in sorted(runs, key=lambda r: r.run_id)] == ["init"] * 3 + ["ask"]
    domains = list(cfg.domains)
    # each objective is the mean of the per-domain final losses
    r0 = runs[0]
    assert r0.objective == pytest.approx(np.mean([r0.final_loss[d] for d in domains]))

    p = res.proposal  # bo's recommendation: the best GP posterior mean over the feasible set
    assert p.strategy == "bo" and p.rule == "predicted" and p.surrogate == "gp"
    assert set(p.weights) == set(domains)
    assert sum(p.weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert min(p.weights.values()) >= -1e-9
    # the objective scores every domain: by default no run and no proposal leaves one below its floor
    floors = cfg.scored_floors()
    assert set(floors) == set(domains)
    assert all(w[d] >= f - 1e-9 for w in [p.weights] + [r.weights for r in runs] for d, f in floors.items())
    assert math.isfinite(p.predicted) and p.std is not None and p.std >= 0
    assert math.isfinite(p.baselines["prior"]["predicted"]) and math.isfinite(p.baselines["uniform"]["predicted"])
    assert p.baselines["best_run"]["observed"] == pytest.approx(min(r.objective for r in runs))
    assert json.loads((cfg.job_dir / "proposal.json").read_text())["weights"] == p.weights
    # each domain's learning curve for the proposed mixture (bo's GP predicts the objective only, so the
    # curves end where the runs' own curves say), and the online mixer given the job directory follows them
    tokens = cfg.proxy.fidelity_list()[-1].tokens
    assert p.predicted_targets is None and set(p.reference_curves) == set(domains)
    ends = np.array([E + B * tokens**-beta for E, B, beta in (p.reference_curves[d] for d in domains)])
    seen = np.array([[r.final_loss[d] for d in domains] for r in runs])
    assert (ends > seen.min(axis=0) - 0.2).all() and (ends < seen.max(axis=0) + 0.2).all()
    ref = make_mixer("default", domains, reference=cfg.job_dir).reference
    np.testing.assert_allclose(ref.loss(tokens), ends, rtol=1e-12)
    assert (ref.loss(tokens / 8) > ref.loss(tokens)).all()
    assert {x.name for x in res.plots} == {"cv_predicted_vs_actual.png", "proposal_vs_prior.png",
                                           "best_vs_budget.png", "runs_by_source.png"}  # one fidelity
    assert all(x.stat().st_size > 1000 for x in res.plots)
    # where the session's time went: the proxies ran after the data check, the final fit after the last result
    ph = res.phases
    assert {"preflight", "data", "worker warm-up", "proxies", "final fit", "trust report", "reference curves",
            "plots"} <= set(ph)
    assert ph["preflight"]["end_s"] <= ph["data"]["start_s"] <= ph["proxies"]["start_s"]
    assert ph["final fit"]["start_s"] >= ph["proxies"]["end_s"] and all(p["s"] >= 0 for p in ph.values())

    # MLflow: one parent, one nested child per proxy carrying its weights
    assert res.unlogged == [] and res.tracking_error is None
    kids = {k.data.tags["mixopt.run_id"]: k for k in _children(cfg, res.parent_run_id)}
    assert set(kids) == {r.run_id for r in runs}
    for r in runs:
        for d in domains:
            assert float(kids[r.run_id].data.params[f"w.{d}"]) == pytest.approx(r.weights[d], rel=1e-5)
        assert kids[r.run_id].data.metrics["objective"] == pytest.approx(r.objective)
    client = MlflowClient(cfg.tracking_uri())
    arts = {a.path for a in client.list_artifacts(res.parent_run_id)}
    assert {"proposal.json", "plots"} <= arts

    # Same job again: nothing is re-run.
    again = run_search(cfg, progress=False)
    assert again.new_runs == 0 and again.resumed
    assert len(read_runs(cfg.job_dir / "runs.jsonl")) == 4

    # A larger budget resumes and adds exactly the difference.
    more = cfg.model_copy(deep=True)
    more.budget.runs = 5
    ext = run_search(more, progress=False)
    assert ext.new_runs == 1
    assert [r.run_id for r in read_runs(cfg.job_dir / "runs.jsonl")][:4] == [r.run_id for r in runs]

    # CLI verbs on the finished job.
    job = write_job(more, tmp_path / "e2e.yaml")
    capsys.readouterr()
    assert main(["status", str(job)]) == 0
    out = capsys.readouterr().out
    assert "5 done" in out and "0 failed" in out and "runs 100% used" in out
    assert main(["report", str(job)]) == 0
    out = capsys.readouterr().out
    assert "predicted objective" in out and "best_vs_budget.png" in out and "mixopt ui" in out
    assert main(["propose", str(job)]) == 0
    assert "proposal" in capsys.readouterr().out
    assert main(["ui", str(job), "--print-command"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:5000" in out and f"--backend-store-uri {cfg.tracking_uri()}" in out
    exp_id = MlflowClient(cfg.tracking_uri()).get_experiment_by_name(cfg.experiment_name()).experiment_id
    # the address lands on the job's runs table in the model-training view, not on MLflow's GenAI overview
    assert f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning" in out
    assert main(["ui", str(job), "--host", "0.0.0.0", "--print-command"]) == 0
    assert "reachable from other machines" in capsys.readouterr().err

    # A changed proxy config is refused with a one-line error (exit 2), nothing touched.
    changed = more.model_copy(deep=True)
    changed.proxy.tokens = 65_536
    bad = write_job(changed, tmp_path / "changed.yaml")
    before = (cfg.job_dir / "runs.jsonl").read_bytes()
    assert main(["search", str(bad), "--quiet"]) == 2
    assert "different data/tokenizer/proxy/seed config" in capsys.readouterr().err
    assert (cfg.job_dir / "runs.jsonl").read_bytes() == before


def _flaky_train(config, data, weights, *, tokens, seed, settings, threads, marker):
    """r0000 diverges (huge lr -> status failed); r0001's worker dies on its first attempt."""
    from mixopt.proxies import train_proxy

    marker = Path(marker)
    if seed == run_seed(0, 0):
        settings = dataclasses.replace(settings, lr=1e4, warmup=0.0)
    elif seed == run_seed(0, 1) and not marker.exists():
        marker.write_text("crashed once")
        os._exit(1)  # the Ray worker process dies
    return train_proxy(config, data, weights, tokens=tokens, seed=seed, settings=settings, threads=threads)


def test_failing_proxy_is_retried_then_marked_failed(ray_cluster, tiny_job, tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    marker = tmp_path / "marker"
    cfg = tiny_job("flaky", search={"strategy": "random", "n_init": 4, "max_retries": 1}, budget={"runs": 4})
    assert cfg.seed == 0
    res = run_search(cfg, progress=False, train_fn=functools.partial(_flaky_train, marker=str(marker)))
    runs = {r.run_id: r for r in read_runs(cfg.job_dir / "runs.jsonl")}
    assert len(runs) == 4
    bad = runs["r0000"]
    assert bad.status == "failed" and bad.objective is None
    assert len(bad.attempts) == 1  # one retry (max_retries=1), then given up
    assert "loss" in bad.reason
    crashed = runs["r0001"]
    assert crashed.ok and len(crashed.attempts) == 1
    assert "Crashed" in crashed.attempts[0] or "Died" in crashed.attempts[0] or "Worker" in crashed.attempts[0]
    assert marker.exists()
    assert all(runs[r].ok for r in ("r0002", "r0003"))
    # the failed run is not a candidate, the search still proposes: random search's best run
    p = res.proposal
    assert p is not None and p.rule == "revealed" and p.context["n_failed"] == 1
    assert p.run_id in {"r0001", "r0002", "r0003"}
    assert p.observed == pytest.approx(min(runs[r].objective for r in ("r0001", "r0002", "r0003")))
    assert p.weights == pytest.approx(runs[p.run_id].weights)
    # replaying the job's own runs recommends exactly the search's proposal (one decision path)
    space = SearchSpace.from_data(cfg, load_prepared(cfg.data_dir))
    pool = Pool.from_run_table(space.table(list(runs.values()), include_confirm=False), objective=space.objective)
    rep = replay(pool, ["random"], seeds=[cfg.seed], budget=float(pool.cost.sum()), n_init=len(pool.X))
    assert rep.curves["reveal"].iloc[-1] == 3
    np.testing.assert_allclose(pool.X[rep.curves["recommended"].iloc[-1]], p.vector(space.domains))
    kids = {k.data.tags["mixopt.run_id"]: k for k in _children(cfg, res.parent_run_id)}
    assert kids["r0000"].info.status == "FAILED"


def _slow_first_train(config, data, weights, *, tokens, seed, settings, threads):
    """The first run of the job finishes last: it sleeps before training."""
    import time

    from mixopt.proxies import train_proxy

    if seed == run_seed(0, 0):
        time.sleep(8.0)
    return train_proxy(config, data, weights, tokens=tokens, seed=seed, settings=settings, threads=threads)


def test_same_seed_gives_the_same_mixtures_whatever_finishes_first(ray_cluster, tiny_job):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    tables = []
    for name, fn in (("order-natural", None), ("order-slow-first", _slow_first_train)):
        cfg = tiny_job(name, search={"strategy": "bo", "n_init": 3, "parallel": 2}, budget={"runs": 6})
        run_search(cfg, progress=False, train_fn=fn)
        runs = sorted(read_runs(cfg.job_dir / "runs.jsonl"), key=lambda r: r.run_id)
        tables.append([(r.run_id, r.source, r.weights, r.objective) for r in runs])
    natural, slow_first = tables
    assert len(natural) == 6 and [r[1] for r in natural].count("init") == 3  # 3 asked after the design
    assert slow_first == natural  # same mixtures, same losses, although r0000 finished last the second time


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_down_loses_no_results_and_report_backfills(ray_cluster, tiny_job, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = tiny_job("down", search={"strategy": "regmix", "n_init": 2, "confirm": True}, budget={"runs": 2},
                    tracking={"uri": f"http://127.0.0.1:{_closed_port()}"})
    res = run_search(down, progress=False)
    ids = sorted(r.run_id for r in read_runs(down.job_dir / "runs.jsonl"))
    assert ids == ["c0002", "r0000", "r0001"]  # two budgeted runs + the confirmation run of the proposal
    assert sorted(res.unlogged) == ids and res.tracking_error
    assert res.proposal is not None and res.spent["runs"] == 2
    confirm = {r.run_id: r for r in res.runs}["c0002"]
    assert confirm.source == "confirm" and confirm.weights == res.proposal.weights
    assert res.proposal.observed == confirm.objective and math.isfinite(confirm.objective)
    assert res.proposal.context["confirm_run_id"] == "c0002"
    up = down.model_copy(deep=True)
    up.tracking.uri = None  # the local store is reachable
    assert main(["report", str(write_job(up, tmp_path / "up.yaml"))]) == 0
    state = json.loads((down.job_dir / "state.json").read_text())
    assert state["unlogged"] == []
    parent = state["mlflow"]["parent_run_id"]
    assert sorted(k.data.tags["mixopt.run_id"] for k in _children(up, parent)) == ids
