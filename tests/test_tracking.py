"""MLflow tracking of a search job: nested child runs with weights and curves, failure tolerance, back-fill."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mixopt.config import JobConfig
from mixopt.search.state import JobState, RunEntry
from mixopt.tracking import Tracker


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace (one sqlite store: creating its tables takes seconds) for the module's jobs."""
    return tmp_path_factory.mktemp("tracking_ws")


def _cfg(ws, name: str, uri=None) -> JobConfig:
    cfg = JobConfig.model_validate({"name": name, "workspace": str(ws),
                                    "domains": {"code": "x", "prose": "y"}, "search": {"strategy": "regmix"}})
    cfg.tracking.uri = uri
    return cfg


def _entry(rid: str, w: float, obj: float | None = None) -> RunEntry:
    ok = obj is not None
    return RunEntry(
        run_id=rid, weights={"code": w, "prose": 1 - w}, fidelity=0, preset="dense-tiny", tokens=4096, seed=3,
        source="init", status="ok" if ok else "failed", objective=obj,
        final_loss={"code": obj, "prose": obj} if ok else {}, flops=1e9, wall_time=2.0,
        reason=None if ok else "non-finite loss at step 3", attempts=[] if ok else ["nan", "nan"],
        record={"tokens_seen": [1024, 4096], "val_loss": {"code": [5.0, obj or 9.0], "prose": [6.0, obj or 9.0]}},
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(client: MlflowClient, cfg, parent: str):
    exp = client.get_experiment_by_name(cfg.experiment_name())
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")


def test_child_runs_are_nested_and_carry_weights_and_curves(ws):
    cfg = _cfg(ws, "nested")
    state = JobState.open(cfg.job_dir, config_hash="h")
    for e in (_entry("r0000", 0.3, 4.5), _entry("r0001", 0.8, None)):
        state.append_run(e)
    tr = Tracker(cfg, state)
    tr.start()  # back-fills both
    tr.log_progress(2, {"best_objective": 4.5})
    tr.close()
    assert tr.error is None
    assert state.meta["unlogged"] == []
    client = MlflowClient(cfg.tracking_uri())
    kids = {r.data.tags["mixopt.run_id"]: r for r in _children(client, cfg, tr.parent_run_id)}
    assert set(kids) == {"r0000", "r0001"}
    ok = kids["r0000"]
    assert float(ok.data.params["w.code"]) == pytest.approx(0.3)
    assert ok.data.params["preset"] == "dense-tiny" and ok.data.params["fidelity"] == "0"
    assert ok.data.tags["strategy"] == "regmix" and ok.data.tags["status"] == "ok"
    assert ok.data.metrics["objective"] == pytest.approx(4.5)
    hist = client.get_metric_history(ok.info.run_id, "val_loss/code")
    assert [(m.step, m.value) for m in hist] == [(1024, 5.0), (4096, 4.5)]
    failed = kids["r0001"]
    assert failed.info.status == "FAILED" and failed.data.tags["status"] == "failed"
    assert failed.data.tags["mixopt.attempts"] == "3"
    parent = client.get_run(tr.parent_run_id)
    assert parent.data.tags["mixopt.role"] == "job"
    assert parent.data.params["search.strategy"] == "regmix"
    assert parent.data.metrics["best_objective"] == pytest.approx(4.5)


def test_the_ui_opens_on_runs_with_real_durations_and_per_run_artifacts(ws):
    cfg = _cfg(ws, "ui")
    state = JobState.open(cfg.job_dir, config_hash="h")
    e = _entry("r0000", 0.3, 4.5)
    e.finished_at, e.wall_time = 1_700_000_000.0, 8.25  # finished then, after 8.25 s of training
    state.append_run(e)
    tr = Tracker(cfg, state)
    tr.start()
    tr.log_proposal({"weights": {"code": 0.3, "prose": 0.7}, "predicted": 4.4}, 1, [])
    tr.close()
    assert tr.error is None
    client = MlflowClient(cfg.tracking_uri())
    exp = client.get_experiment_by_name(cfg.experiment_name())
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the runs table, not GenAI pages
    (kid,) = _children(client, cfg, tr.parent_run_id)
    assert kid.info.end_time == 1_700_000_000_000
    assert kid.info.end_time - kid.info.start_time == 8250  # the training time, not the logging time
    assert {a.path for a in client.list_artifacts(kid.info.run_id)} == {"loss_curves.png"}
    table = client.download_artifacts(tr.parent_run_id, "runs.csv", str(ws / "dl"))
    rows = Path(table).read_text().splitlines()
    assert rows[0].split(",")[:3] == ["run_id", "status", "source"] and rows[1].startswith("r0000,ok,init")
    assert "w.code" in rows[0] and "loss.prose" in rows[0]


def test_logging_is_idempotent_across_sessions(ws):
    cfg = _cfg(ws, "idempotent")
    state = JobState.open(cfg.job_dir, config_hash="h")
    state.append_run(_entry("r0000", 0.3, 4.5))
    tr = Tracker(cfg, state)
    tr.start()
    tr.close()
    # A crash after logging but before bookkeeping: the id is listed as unlogged again.
    state.meta["unlogged"] = ["r0000"]
    tr2 = Tracker(cfg, state)
    tr2.start()
    tr2.log_run(state.runs[0])
    tr2.close()
    assert tr2.parent_run_id == tr.parent_run_id  # the job's parent run is reused
    assert len(_children(MlflowClient(cfg.tracking_uri()), cfg, tr.parent_run_id)) == 1
    assert state.meta["unlogged"] == []


def test_down_server_keeps_results_and_backfills_later(ws, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = _cfg(ws, "down", uri=f"http://127.0.0.1:{_closed_port()}")
    state = JobState.open(down.job_dir, config_hash="h")
    tr = Tracker(down, state)
    tr.start()
    state.append_run(_entry("r0000", 0.3, 4.5))
    tr.log_run(state.runs[0])
    tr.close(timeout=30)
    assert tr.down and tr.error  # the reason is reported, nothing raised
    assert state.meta["unlogged"] == ["r0000"]
    assert [r.run_id for r in JobState.open(down.job_dir, config_hash="h").runs] == ["r0000"]
    # The store comes back (here: a local one); the next session back-fills.
    up = _cfg(ws, "down")
    state2 = JobState.open(up.job_dir, config_hash="h")
    tr2 = Tracker(up, state2)
    tr2.start()
    tr2.close()
    assert state2.meta["unlogged"] == []
    assert len(_children(MlflowClient(up.tracking_uri()), up, tr2.parent_run_id)) == 1


def test_disabled_tracking_does_nothing(tmp_path):
    cfg = _cfg(tmp_path, "off")
    cfg.tracking.enabled = False
    state = JobState.open(cfg.job_dir, config_hash="h")
    tr = Tracker(cfg, state)
    tr.start()
    tr.log_run(_entry("r0000", 0.3, 4.5))
    tr.close()
    assert not (tmp_path / "mlflow.db").exists()
