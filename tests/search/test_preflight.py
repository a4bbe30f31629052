"""Validation before spending: `mixopt plan` and the first seconds of `mixopt search` refuse what needs no
training to find out -- before any data is tokenised, any job file written or Ray started."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import mixopt.data
import mixopt.search.loop as loop
from mixopt.cli import main
from mixopt.objective import Objective
from mixopt.search.plan import plan_job


def write_job(raw: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _nothing_may_start(*a, **k):
    raise AssertionError("validation must fail before data preparation or Ray")


@pytest.fixture
def refused(tiny_job, tmp_path, capsys, monkeypatch):
    """Factory: write ``tiny_job(name, **sections)`` (``edit`` changes the raw dict), run `mixopt search`
    (and `mixopt plan` unless ``plan=False``) on it, check both refuse in one line without spending
    anything; return the error."""
    monkeypatch.setattr(loop, "ray_session", _nothing_may_start)
    monkeypatch.setattr(mixopt.data, "prepare_data", _nothing_may_start)

    def run(name: str, edit=None, plan: bool = True, **sections) -> str:
        cfg = tiny_job(name, tracking={"enabled": False}, **sections)
        raw = cfg.model_dump(mode="json")
        if edit:
            edit(raw)
        job = write_job(raw, tmp_path / f"{name}.yaml")
        t0 = time.time()
        assert main(["search", str(job), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
        assert time.time() - t0 < 30  # seconds, not a tokenised corpus and a Ray start-up
        assert not cfg.job_dir.exists()  # nothing written
        if plan:  # plan lists the same problem (and still shows the plan)
            assert main(["plan", str(job)]) == 2
            out, plan_err = capsys.readouterr()
            assert "fidelity" in out and err[len("error: "):].split(" (+")[0] in plan_err
        return err

    return run


def test_a_token_budget_of_1e15_is_refused(refused):
    err = refused("huge", proxy={"tokens": 10**15})
    assert "proxy run of 1e+15 tokens repeats the training data" in err and "data.max_epochs = 8" in err


def test_infeasible_constraints_are_found_before_data_preparation_and_ray(refused):
    err = refused("infeasible", edit=lambda raw: raw["constraints"].update(min_weight=0.3))
    assert "infeasible constraints: min weights sum to 1.8 > 1" in err


def test_repetition_caps_no_mixture_can_meet_are_refused(refused):
    err = refused("capped", edit=lambda raw: raw["constraints"].update(max_epochs=1.0, target_tokens=10**12))
    assert "infeasible constraints: max weights / repetition caps sum to" in err


def test_a_seq_len_longer_than_the_validation_split_is_refused(refused):
    err = refused("longseq", proxy={"seq_len": 100_000})
    assert "proxy.seq_len 100,000 needs validation windows of 100,001 tokens" in err and "(+1 more" in err


def test_an_unknown_surrogate_is_refused_by_the_config(refused):
    err = refused("magic", edit=lambda raw: raw["search"].update(surrogate="magic"), plan=False)
    assert "search.surrogate: Value error, unknown surrogate 'magic'; choose one of" in err


def test_objective_weights_of_1e308_stay_finite(tiny_job):
    cfg = tiny_job("bigweights", search={"objective": {"code": 1e308, "prose": 1e308}})
    domains = list(cfg.domains)
    Y = np.arange(2 * len(domains), dtype=float).reshape(2, -1) + 3.0
    got = Objective.parse(cfg.search.objective).values(Y, domains)
    np.testing.assert_allclose(got, Y[:, [domains.index("code"), domains.index("prose")]].mean(axis=1))


def test_plan_counts_tokens_and_flags_a_domain_too_small(demo_config, demo_prepared, tmp_path, capsys):
    cfg = demo_config.model_copy(deep=True)
    cfg.workspace = str(tmp_path / "fresh")  # nothing prepared here, but the corpus is small: exact counts
    actual = {d: len(demo_prepared.train[d]) + len(demo_prepared.val[d]) for d in demo_prepared.domains}
    plan = plan_job(cfg)
    assert not plan["prepared"]
    for r in plan["domains"]:  # was off by 1.4x-3.5x (an assumed 4 bytes per token), then by a few %
        assert r["tokens"] == actual[r["domain"]] and r["count"] == "exact", r
    smallest = min(actual, key=actual.get)
    cfg.data.val_tokens = int(0.6 * actual[smallest])  # the split would need 1.2x the domain
    job = tmp_path / "small.yaml"
    job.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    assert main(["plan", str(job)]) == 2
    err = capsys.readouterr().err
    assert f"error: domain '{smallest}': {actual[smallest]:,} tokens" in err and "need at least 2 x data.val_tokens" in err
