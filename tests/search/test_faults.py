"""Fault injection on a job's state: two writers, deleted or corrupted files, a spent wall budget.

Each test reproduces a failure found by probing the CLI (issue 16) and checks the outcome: nothing lost,
nothing duplicated, and a clear one-line message. Only the last test starts Ray.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import mixopt.data
import mixopt.search.loop as loop
from mixopt.cli import main
from mixopt.search import (
    JobLock,
    JobLockedError,
    JobState,
    Launch,
    RunEntry,
    config_hash,
    read_runs,
    run_search,
)
from mixopt.search.report import format_status
from mixopt.search.workers import run_seed


def write_job(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def _fake_entry(cfg, i: int, rng) -> RunEntry:
    """A finished run as the search would have recorded it for run index ``i`` of ``cfg``."""
    domains = list(cfg.domains)
    w = rng.dirichlet(np.ones(len(domains)))
    loss = {d: float(3.0 + x) for d, x in zip(domains, w, strict=True)}
    return RunEntry(run_id=f"r{i:04d}", weights=dict(zip(domains, w.tolist(), strict=True)), fidelity=0,
                    preset=cfg.proxy.preset, tokens=cfg.proxy.tokens, seed=run_seed(cfg.seed, i),
                    source="init" if i < cfg.search.n_init else "ask",
                    status="ok", objective=float(np.mean(list(loss.values()))), final_loss=loss, flops=1e9,
                    wall_time=1.0, finished_at=1000.0 + i)


def _finished_job(cfg, n: int) -> JobState:
    """A job with ``n`` finished runs written through the real state API (as a search writes them)."""
    st = JobState.open(cfg.job_dir, config_hash=config_hash(cfg), name=cfg.name)
    rng = np.random.default_rng(0)
    for i in range(n):
        e = _fake_entry(cfg, i, rng)
        st.add_pending(Launch(e.run_id, e.weights, 0, e.preset, e.tokens, e.seed, e.source, 1e9))
        st.append_run(e)
    st.set(next_index=n)
    return st


def _no_ray(*a, **k):
    raise AssertionError("Ray must not start")


def _one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- one writer per job ----------------------------------------------------------------------------------
def test_a_second_search_of_the_same_job_is_refused_and_names_the_holder(tiny_job, tmp_path, capsys):
    cfg = tiny_job("locked", search={"strategy": "random"}, budget={"runs": 6}, tracking={"enabled": False})
    job = write_job(cfg, tmp_path / "locked.yaml")
    _finished_job(cfg, 2)
    files = {p.name: p.read_bytes() for p in (cfg.job_dir / "runs.jsonl", cfg.job_dir / "state.json")}
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mixopt.search.lock import JobLock; "
         "lock = JobLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)", str(cfg.job_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        # the issue: both searches trained every run, each id twice in runs.jsonl and in MLflow
        for verb in ("search", "report", "propose"):
            assert main([verb, str(job)] + (["--quiet"] if verb == "search" else [])) == 2
            err = _one_error_line(capsys.readouterr().err)
            assert "another search holds this job" in err and f"pid {holder.pid}" in err and "host" in err
        assert main(["status", str(job)]) == 0 and "2 done" in capsys.readouterr().out  # reading is fine
        assert {p.name: p.read_bytes() for p in (cfg.job_dir / "runs.jsonl", cfg.job_dir / "state.json")} == files
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the dead holder's lock: no stale lock file blocks anyone; a second writer in the
    # same process is refused too
    with JobLock(cfg.job_dir), pytest.raises(JobLockedError, match=f"pid {os.getpid()}"):
        JobLock(cfg.job_dir, purpose="report").acquire()


# --- state.json and runs.jsonl disagree ------------------------------------------------------------------
def test_runs_file_deleted_while_state_remains_is_refused_not_continued(tiny_job, tmp_path, capsys):
    cfg = tiny_job("lost-runs", search={"strategy": "random"}, tracking={"enabled": False})
    job = write_job(cfg, tmp_path / "job.yaml")
    _finished_job(cfg, 3)
    (cfg.job_dir / "runs.jsonl").unlink()
    state_before = (cfg.job_dir / "state.json").read_bytes()
    for verb in (["search", str(job), "--quiet"], ["status", str(job)]):
        assert main(verb) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert "records 3 finished run(s) but the file is missing" in err and "restore it from a backup" in err
    assert (cfg.job_dir / "state.json").read_bytes() == state_before  # nothing changed
    assert not (cfg.job_dir / "runs.jsonl").exists()


def test_state_deleted_is_refused_then_rebuilt_and_a_finished_job_starts_nothing(tiny_job, tmp_path, capsys,
                                                                                monkeypatch):
    cfg = tiny_job("lost-state", search={"strategy": "random", "n_init": 3}, budget={"runs": 4},
                   tracking={"enabled": False})
    job = write_job(cfg, tmp_path / "job.yaml")
    _finished_job(cfg, 4)
    runs_before = (cfg.job_dir / "runs.jsonl").read_bytes()
    (cfg.job_dir / "state.json").unlink()
    monkeypatch.setattr(loop, "ray_session", _no_ray)

    # the issue: a resume re-generated the design and re-ran r0000, r0001 under the same ids
    assert main(["search", str(job), "--quiet"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "state.json is missing but runs.jsonl holds 4 finished run(s)" in err and "--rebuild-state" in err
    assert main(["status", str(job)]) == 2 and "--rebuild-state" in capsys.readouterr().err

    # rebuilt: the budget is spent, so no run is launched; the proposal is made from the 4 runs
    assert main(["search", str(job), "--quiet", "--rebuild-state"]) == 0
    out = capsys.readouterr().out
    assert "4 ok and 0 failed runs (0 new this session)" in out and "proposal" in out
    assert (cfg.job_dir / "runs.jsonl").read_bytes() == runs_before  # nothing re-run, nothing appended
    meta = json.loads((cfg.job_dir / "state.json").read_text())
    assert meta["next_index"] == 4 and meta["init_next"] == 3 and meta["finished"] == [f"r{i:04d}" for i in range(4)]
    assert main(["status", str(job)]) == 0 and "4 done, 0 interrupted (re-run on resume), 0 failed" in capsys.readouterr().out

    # a no-op resume of the finished job: no data preparation, no Ray, no wall time spent, no secret shown
    monkeypatch.setattr(mixopt.data, "prepare_data", _no_ray)
    secret = cfg.model_copy(deep=True)
    secret.tracking.uri = "http://alice:s3cret@127.0.0.1:9/"
    elapsed = meta["elapsed_s"]
    t0 = time.time()
    assert main(["search", str(write_job(secret, tmp_path / "secret.yaml")), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 new this session" in out and "http://***@127.0.0.1:9/" in out and "s3cret" not in out
    assert time.time() - t0 < 15
    assert json.loads((cfg.job_dir / "state.json").read_text())["elapsed_s"] == elapsed


def test_a_rebuild_refuses_runs_made_with_another_config(tiny_job, tmp_path, capsys):
    cfg = tiny_job("rebuild-other", tracking={"enabled": False})
    _finished_job(cfg, 2)
    (cfg.job_dir / "state.json").unlink()
    other = cfg.model_copy(deep=True)
    other.seed = 5  # every run's seed says it was made with seed 0
    assert main(["search", str(write_job(other, tmp_path / "job.yaml")), "--quiet", "--rebuild-state"]) == 2
    assert "was not made with this job's proxy/seed config" in _one_error_line(capsys.readouterr().err)
    assert not (cfg.job_dir / "state.json").exists()


def test_a_torn_last_line_is_re_queued_with_its_seed(tiny_job, tmp_path):
    cfg = tiny_job("torn", tracking={"enabled": False})
    st = _finished_job(cfg, 3)
    path = cfg.job_dir / "runs.jsonl"
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.rstrip(b"\n").rfind(b"\n") + 40])  # the last line cut mid-write
    lost = st.runs[-1]

    st2 = JobState.open(cfg.job_dir, config_hash=config_hash(cfg), name=cfg.name)
    assert [r.run_id for r in st2.runs] == ["r0000", "r0001"]
    again = {p.run_id: p for p in st2.pending_launches()}
    assert set(again) == {"r0002"}  # pending again: the next session re-runs it ...
    assert again["r0002"].seed == lost.seed and again["r0002"].weights == lost.weights  # ... with the same seed
    assert path.read_bytes() == raw[: raw.rstrip(b"\n").rfind(b"\n") + 1]  # the torn tail is cut off
    assert "2 done, 1 interrupted (re-run on resume)" in format_status(cfg, JobState.load(cfg.job_dir))
    st2.append_run(lost)  # the re-run: one line per id
    assert [r.run_id for r in read_runs(path)] == ["r0000", "r0001", "r0002"]
    assert JobState.open(cfg.job_dir, config_hash=config_hash(cfg)).pending_launches() == []


def test_invalid_utf8_in_runs_is_a_one_line_error(tiny_job, tmp_path, capsys):
    cfg = tiny_job("utf8", tracking={"enabled": False})
    job = write_job(cfg, tmp_path / "job.yaml")
    _finished_job(cfg, 3)
    path = cfg.job_dir / "runs.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"init"', b'"in\xff\xfet"')
    path.write_bytes(b"\n".join(lines))
    for verb in (["status", str(job)], ["search", str(job), "--quiet"], ["report", str(job)]):
        assert main(verb) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert f"{path}: line 2 is not valid UTF-8" in err


def test_a_corrupt_state_file_is_a_one_line_error(tiny_job, tmp_path, capsys):
    cfg = tiny_job("badstate", tracking={"enabled": False})
    job = write_job(cfg, tmp_path / "job.yaml")
    _finished_job(cfg, 1)
    (cfg.job_dir / "state.json").write_bytes(b'{"pending": \xff}')
    assert main(["status", str(job)]) == 2
    assert "state.json: unreadable" in _one_error_line(capsys.readouterr().err)


def test_a_search_whose_every_run_failed_does_not_exit_0(tiny_job, tmp_path, capsys, monkeypatch):
    cfg = tiny_job("allfailed")
    failed = RunEntry(run_id="r0000", weights={d: 1 / len(cfg.domains) for d in cfg.domains}, fidelity=0,
                      preset="dense-tiny", tokens=16384, seed=1, source="init", status="failed", objective=None,
                      final_loss={}, flops=1e9, wall_time=1.0, reason="DataError: validation split too short")
    result = loop.SearchResult(job_dir=cfg.job_dir, proposal=None, runs=[failed], spent={}, budget_fraction=1.0,
                               tracking_uri=cfg.tracking_uri(), experiment="x")
    monkeypatch.setattr("mixopt.search.run_search", lambda *a, **k: result)
    assert main(["search", str(write_job(cfg, tmp_path / "job.yaml")), "--quiet"]) == 1
    assert "every run failed (first: DataError: validation split too short)" in capsys.readouterr().err


# --- the wall-time budget is a hard limit ----------------------------------------------------------------
def _sleepy_train(config, data, weights, *, tokens, seed, settings, threads, marker):
    """Never finishes until ``marker`` exists; then returns a plausible record at once."""
    while not Path(marker).exists():
        time.sleep(0.2)
    loss = {d: 3.0 + w for d, w in weights.items()}
    return {"status": "ok", "final_loss": loss, "flops": 1e6, "wall_time": 0.01, "tokens_seen": [],
            "val_loss": {}, "reason": None}


@pytest.mark.integration
def test_wall_budget_cancels_runs_in_flight_and_a_resume_reruns_them(ray_cluster, tiny_job, tmp_path, monkeypatch):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    marker = tmp_path / "go"
    train = functools.partial(_sleepy_train, marker=str(marker))
    cfg = tiny_job("wall", search={"strategy": "random", "n_init": 4, "parallel": 2},
                   budget={"runs": 4, "wall_seconds": 3}, tracking={"enabled": False})
    t0 = time.time()
    res = run_search(cfg, progress=False, train_fn=train)
    assert time.time() - t0 < 60  # the runs in flight did not keep the search past its wall budget
    assert res.runs == [] and res.proposal is None
    meta = json.loads((cfg.job_dir / "state.json").read_text())
    assert sorted(meta["pending"]) == ["r0000", "r0001"] and meta["elapsed_s"] >= 3
    assert "0 done, 2 interrupted (re-run on resume)" in format_status(cfg, JobState.load(cfg.job_dir))
    seeds = {rid: launch["seed"] for rid, launch in meta["pending"].items()}

    marker.write_text("go")
    more = cfg.model_copy(deep=True)
    more.budget.wall_seconds = 600
    res = run_search(more, progress=False, train_fn=train)
    ids = [r.run_id for r in read_runs(cfg.job_dir / "runs.jsonl")]
    assert sorted(ids) == ["r0000", "r0001", "r0002", "r0003"] and len(set(ids)) == 4  # nothing lost or doubled
    by_id = {r.run_id: r for r in res.runs}
    assert all(by_id[rid].seed == seed for rid, seed in seeds.items())  # re-run with the same seeds
    assert res.proposal is not None

    # nothing left to do: the stored proposal, without data preparation, Ray or wall time
    elapsed = json.loads((cfg.job_dir / "state.json").read_text())["elapsed_s"]
    monkeypatch.setattr(loop, "ray_session", _no_ray)
    monkeypatch.setattr(mixopt.data, "prepare_data", _no_ray)
    again = run_search(more, progress=False, train_fn=train)
    assert again.new_runs == 0 and again.resumed and again.proposal.weights == res.proposal.weights
    assert json.loads((cfg.job_dir / "state.json").read_text())["elapsed_s"] == elapsed


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_the_search_like_ctrl_c_and_a_resume_completes_it(ray_cluster, tiny_job, tmp_path):
    """`mixopt cancel` stops a cluster job with SIGTERM (Ray kills it 3 s later). The search used to die on the
    spot: its MLflow parent run stayed RUNNING while the job was stopped. Now it ends like Ctrl-C (exit 130,
    parent run KILLED, runs in flight left pending) and the same command resumes it to completion."""
    from mlflow.tracking import MlflowClient

    from mixopt.tracking import tracking_uri

    cfg = tiny_job("sigterm", search={"strategy": "random", "n_init": 2, "parallel": 1}, budget={"runs": 3})
    job = write_job(cfg, tmp_path / "sigterm.yaml")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "mixopt.cli", "search", str(job), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs_file = cfg.job_dir / "runs.jsonl"
    try:
        deadline = time.monotonic() + 240
        while not (runs_file.exists() and runs_file.read_text().count("\n") >= 1):  # the 2nd run is in flight
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "interrupted" in out, out
    done = [r.run_id for r in read_runs(runs_file)]
    assert 1 <= len(done) < 3

    client = MlflowClient(tracking_uri=tracking_uri(cfg))
    exp = client.get_experiment_by_name(cfg.experiment_name())
    (parent,) = client.search_runs([exp.experiment_id], "tags.`mixopt.role` = 'job'")
    assert parent.info.status == "KILLED"

    assert main(["search", str(job), "--quiet"]) == 0  # the resume
    ids = [r.run_id for r in read_runs(runs_file)]
    assert sorted(ids) == ["r0000", "r0001", "r0002"] and set(done) <= set(ids)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`mixopt.role` = 'job'")
    assert parent.info.status == "FINISHED"
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["mixopt.run_id"] for c in children) == sorted(ids)  # each run logged once
