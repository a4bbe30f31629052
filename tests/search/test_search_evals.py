"""A search whose objective weighs a downstream eval metric: real proxies score a jsonl task, the runs
are ranked by it, and `mixopt fit` takes the same objective over the job's exported runs table."""

from __future__ import annotations

import json

import pytest

from mixopt.cli import main
from mixopt.config import JobConfig
from mixopt.errors import ConfigError
from mixopt.search import run_search
from mixopt.search.preflight import preflight

METRIC = "eval/arith/norm_nll"


def _completion_items(demo_corpus, path, n=16):
    """Completion items cut from lines of the demo `arithmetic` domain: ``(56 * 19) + 7 =`` -> `` 1071``."""
    text = json.loads((demo_corpus / "arithmetic" / "arithmetic.jsonl").read_text().splitlines()[-1])["text"]
    lines = [ln for ln in text.splitlines() if " = " in ln][:n]
    path.write_text("".join(json.dumps({"prompt": ln.rsplit(" = ", 1)[0] + " =",
                                        "completion": " " + ln.rsplit(" = ", 1)[1]}) + "\n" for ln in lines))
    return path


def _with_evals(cfg, evals, objective) -> JobConfig:
    raw = cfg.model_dump(mode="json")
    raw["evals"], raw["search"]["objective"] = evals, objective
    return JobConfig.model_validate(raw)


@pytest.mark.slow
def test_search_ranks_runs_by_an_eval_metric_and_fit_takes_the_same_objective(
        ray_cluster, tiny_job, demo_corpus, tmp_path, capsys):
    items = _completion_items(demo_corpus, tmp_path / "arith.jsonl")
    job = tiny_job("evals", tracking={"enabled": False}, search={"strategy": "random", "n_init": 3},
                   budget={"runs": 3})
    cfg = _with_evals(job, [{"name": "arith", "path": str(items), "kind": "completion"}], {METRIC: 1.0})
    res = run_search(cfg, progress=False)
    ok = [r for r in res.runs if r.ok]
    assert len(ok) == 3
    for r in ok:  # the objective is the eval metric itself, not the domain losses
        assert r.objective == pytest.approx(r.metrics[METRIC])
        assert set(r.metrics) == {"eval/arith/accuracy", METRIC}
        assert r.objective != pytest.approx(sum(r.final_loss.values()) / len(r.final_loss))
    best = min(ok, key=lambda r: r.metrics[METRIC])  # `random` recommends its best run by the objective
    assert res.proposal.weights == pytest.approx(best.weights)

    csv = tmp_path / "runs.csv"
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps(cfg.model_dump(mode="json")))
    assert main(["report", str(job), "--runs-csv", str(csv)]) == 0
    assert main(["fit", str(csv), "--weights", "weight/", "--targets", "loss/|eval/", "--objective", f"{METRIC}=1",
                 "--surrogate", "linear", "--folds", "0"]) == 0
    out = capsys.readouterr().out
    assert METRIC in out


def test_eval_names_and_entry_points_are_checked_before_anything_runs(tiny_job, tmp_path):
    cfg = tiny_job("evals-bad", tracking={"enabled": False})
    with pytest.raises(ValueError, match="search.objective names unknown eval metric 'eval/arith/accuracy'"):
        _with_evals(cfg, [], {"eval/arith/accuracy": -1})
    bad = _with_evals(cfg, [{"name": "mine", "entry": "no_such_module_y:score"}], "mean")
    with pytest.raises(ConfigError, match=r"^evals 'mine': eval entry 'no_such_module_y:score': cannot import"):
        preflight(bad)
    assert not bad.job_dir.exists()
