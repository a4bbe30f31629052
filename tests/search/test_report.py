"""What `mixopt status` and the progress display tell the user, from the files alone."""

from __future__ import annotations

import io
import time

from mixopt.config import JobConfig
from mixopt.proposal import Proposal
from mixopt.search.progress import ProgressDisplay, Snapshot
from mixopt.search.report import format_proposal, format_status
from mixopt.search.state import JobState, Launch, RunEntry


def _cfg(tmp_path) -> JobConfig:
    return JobConfig.model_validate({"name": "st", "workspace": str(tmp_path), "domains": {"a": "x", "b": "y"},
                                     "budget": {"runs": 4}})


def _entry(rid: str, obj: float | None) -> RunEntry:
    return RunEntry(run_id=rid, weights={"a": 0.5, "b": 0.5}, fidelity=0, preset="dense-tiny", tokens=1000, seed=1,
                    source="init", status="ok" if obj else "failed", objective=obj,
                    final_loss={"a": obj, "b": obj} if obj else {}, flops=1e9, wall_time=1.0,
                    reason=None if obj else "loss exploded")


def test_status_counts_runs_best_and_budget(tmp_path):
    cfg = _cfg(tmp_path)
    st = JobState.open(cfg.job_dir, config_hash="h")
    st.append_run(_entry("r0000", 4.2))
    st.append_run(_entry("r0001", 3.9))
    st.append_run(_entry("r0002", None))
    st.add_pending(Launch("r0003", {"a": 0.1, "b": 0.9}, 0, "dense-tiny", 1000, 2, "ask"))
    text = format_status(cfg, JobState.load(cfg.job_dir))
    assert "2 done, 1 interrupted" in text and "1 failed" in text
    assert "best so far: r0001 objective 3.9000" in text
    assert "runs 75% used (1 left)" in text
    st.set(heartbeat=time.time())
    assert "1 running" in format_status(cfg, JobState.load(cfg.job_dir))


def test_status_lists_the_latest_proposal_in_the_jobs_domain_order(tmp_path):
    cfg = JobConfig.model_validate({"name": "order", "workspace": str(tmp_path), "domains": {"web": "x", "code": "y"},
                                    "budget": {"runs": 4}})
    st = JobState.open(cfg.job_dir, config_hash="h")
    st.set(proposal={"weights": {"web": 0.7, "code": 0.3}, "predicted": 3.0, "n_runs": 2, "key": "k"})
    text = format_status(cfg, JobState.load(cfg.job_dir))  # read back from state.json
    assert "latest proposal (after 2 runs): web 0.700, code 0.300" in text


def test_proposal_table_compares_with_prior_uniform_and_best():
    w = {"a": 0.7, "b": 0.3}
    p = Proposal(weights=w, predicted=3.5, std=0.1, surrogate="gp", strategy="bo", n_fit=5, objective="mean",
                 context={"fidelity": {"preset": "dense-tiny", "tokens": 1000}},
                 baselines={"prior": {"weights": {"a": 0.4, "b": 0.6}, "predicted": 3.8, "observed": None},
                            "uniform": {"weights": {"a": 0.5, "b": 0.5}, "predicted": 3.7, "observed": 3.72},
                            "best_run": {"run_id": "r0003", "weights": {"a": 0.6, "b": 0.4}, "predicted": None,
                                         "observed": 3.6}})
    text = format_proposal(p)
    assert text.splitlines()[0].startswith("proposal of strategy bo: best predicted by gp (5 rows fitted)")
    assert "predicted objective 3.5000 ± 0.1000" in text
    lines = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines()[2:]}
    assert lines["a"] == ["0.7000", "0.4000", "0.5000", "0.6000"]
    assert lines["predicted"] == ["3.5000", "3.8000", "3.7000", "-"]
    assert lines["observed"] == ["-", "-", "3.7200", "3.6000"]
    assert "learning curves" not in text  # no curves in this proposal: nothing promised
    p.reference_curves = {"a": [2.0, 50.0, 0.3], "b": [2.5, 40.0, 0.3]}
    assert "learning curves for 2 domain(s) in proposal.json" in format_proposal(p)


def test_a_revealed_proposal_says_which_run_it_is_and_that_there_is_no_model():
    p = Proposal(weights={"a": 0.6, "b": 0.4}, rule="revealed", strategy="random", run_id="r0002", observed=3.6,
                 method="revealed", reason="best of 3 feasible runs, at the target fidelity")
    text = format_proposal(p)
    assert "best run observed (r0002)" in text and "predicted objective - (no model)" in text
    assert "observed 3.6000" in text and "note: best of 3 feasible runs" in text


def test_plain_progress_lines_when_not_a_tty():
    buf = io.StringIO()
    d = ProgressDisplay(enabled=True, live=None, stream=buf)  # StringIO is not a TTY
    d.update(Snapshot(done=3, running=2, failed=1, best=4.25, budget=0.5, elapsed_s=60.0), "r0002 ok")
    line = buf.getvalue().strip()
    assert line.startswith("r0002 ok | runs done 3 running 2 failed 1 | best 4.2500 | budget 50%")
    assert "eta 1:00" in line
