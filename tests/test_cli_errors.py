"""Bad inputs at the command line: one-line errors (exit 2, nothing half-written) instead of tracebacks,
implausible numbers warned about and skipped, no credential printed or stored, no process left behind."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from mixopt.cli import main
from mixopt.config import JobConfig
from mixopt.tracking import Tracker, client_uri


def _one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs_table(path: Path, n: int = 30, seed: int = 0) -> Path:
    """Mixtures of a, b, c and two losses with a known bowl (the optimum is inside the simplex)."""
    W = np.random.default_rng(seed).dirichlet(np.ones(3), n)
    bowl = 3.0 + 4.0 * ((W - [0.5, 0.3, 0.2]) ** 2).sum(1)
    pd.DataFrame({"w_a": W[:, 0], "w_b": W[:, 1], "w_c": W[:, 2], "loss_a": bowl + 0.1 * W[:, 0],
                  "loss_b": bowl - 0.1 * W[:, 0]}).to_csv(path, index=False)
    return path


def _fit(table: Path, *extra: str) -> list[str]:
    return ["fit", str(table), "--weights", "w_", "--targets", "loss_", "--surrogate", "linear", *extra]


# --- tracebacks that are now one line -----------------------------------------------------------------
def test_a_workspace_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "ws").write_text("not a folder")
    src = tmp_path / "src"
    src.mkdir()
    for d in ("a", "b"):
        (src / f"{d}.txt").write_text(f"{d} words " * 2000)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"name": "wsfile", "workspace": "ws", "domains": {"a": "src/a.txt", "b": "src/b.txt"},
                                   "tokenizer": {"vocab_size": 300}, "data": {"val_tokens": 256},
                                   "proxy": {"tokens": 4096, "seq_len": 32}, "search": {"candidates": 256}}))
    for verb in (["search", str(job), "--quiet"], ["plan", str(job)], ["prepare", str(job), "-q"]):
        assert main(verb) == 2, verb
        err = _one_error_line(capsys.readouterr().err)
        assert str(tmp_path / "ws") in err, err
    assert (tmp_path / "ws").read_text() == "not a folder"


@pytest.mark.parametrize("verb", ["fit", "replay"])
def test_out_on_an_existing_file_is_refused_before_any_work(verb, tmp_path, capsys):
    table = _runs_table(tmp_path / "runs.csv")
    out = tmp_path / "out"
    out.write_text("keep me")
    args = _fit(table, "--out", str(out)) if verb == "fit" else \
        ["replay", str(table), "--weights", "w_", "--targets", "loss_", "--out", str(out), "--no-mlflow"]
    assert main(args) == 2
    assert f"--out {out}: exists and is not a folder" in _one_error_line(capsys.readouterr().err)
    assert out.read_text() == "keep me"


def test_replay_with_an_unreachable_tracking_server_fails_first_in_one_line(tmp_path, capsys):
    table = _runs_table(tmp_path / "runs.csv")
    uri = f"http://alice:s3cret@127.0.0.1:{_closed_port()}"
    t0 = time.time()
    assert main(["replay", str(table), "--weights", "w_", "--targets", "loss_", "--strategy", "random", "--seeds", "1",
                 "--out", str(tmp_path / "out"), "--tracking-uri", uri]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "MLflow tracking server http://***@127.0.0.1" in err and "is unreachable" in err and "s3cret" not in err
    assert time.time() - t0 < 30 and not (tmp_path / "out").exists()  # nothing replayed, nothing written


# --- numbers ------------------------------------------------------------------------------------------
def test_duplicate_column_names_are_rejected_not_renamed(tmp_path, capsys):
    table = tmp_path / "dup.csv"
    table.write_text("w_a,w_b,w_a,loss_a\n0.5,0.5,0.1,3.0\n0.2,0.8,0.1,2.5\n")
    assert main(_fit(table)) == 2
    assert "duplicate column name(s) ['w_a']" in _one_error_line(capsys.readouterr().err)


def test_a_loss_of_1e300_is_skipped_with_a_warning_naming_the_row(tmp_path, capsys):
    table = _runs_table(tmp_path / "runs.csv")
    df = pd.read_csv(table)
    df.loc[7, "loss_a"] = 1e300
    df.loc[11, "loss_b"] = -2.0
    df.to_csv(table, index=False)
    assert main(_fit(table, "--folds", "3", "--propose", "--out", str(tmp_path / "fit"))) == 0
    err = capsys.readouterr().err
    assert "warning: skipped row 7: target 'loss_a' = 1e+300 is outside [0, 1e+06]" in err
    assert "warning: skipped row 11: target 'loss_b' = -2 is outside" in err
    cv = json.loads((tmp_path / "fit" / "cv.json").read_text())
    assert 0 <= cv[0]["mae"] < 0.5  # not an MAE with 300 digits
    clean = tmp_path / "clean.csv"  # the same fit as on the table without those rows
    df.drop(index=[7, 11]).to_csv(clean, index=False)
    assert main(_fit(clean, "--folds", "3", "--propose", "--out", str(tmp_path / "clean"))) == 0
    got, want = (json.loads((tmp_path / d / "proposal.json").read_text()) for d in ("fit", "clean"))
    assert got["weights"] == pytest.approx(want["weights"]) and got["predicted"] == pytest.approx(want["predicted"])
    assert main(["replay", str(table), "--weights", "w_", "--targets", "loss_", "--strategy", "random", "--seeds", "1",
                 "--out", str(tmp_path / "rep"), "--no-mlflow"]) == 0
    assert "pool: 28 mixtures" in capsys.readouterr().out


def test_objective_weights_of_1e308_give_the_same_proposal_as_their_mean(tmp_path, capsys):
    table = _runs_table(tmp_path / "runs.csv")
    preds = []
    for objective in ("mean", "loss_a=1e308,loss_b=1e308"):
        out = tmp_path / objective.replace("=", "_").replace(",", "_")
        assert main(_fit(table, "--objective", objective, "--folds", "0", "--propose", "--out", str(out))) == 0
        preds.append(json.loads((out / "proposal.json").read_text())["predicted"])
    capsys.readouterr()
    assert np.isfinite(preds[1]) and preds[1] == pytest.approx(preds[0], rel=1e-9)


# --- secrets ------------------------------------------------------------------------------------------
def test_credentials_in_the_tracking_uri_are_never_logged_stored_or_printed(tmp_path, monkeypatch, caplog):
    cfg = JobConfig.model_validate({"name": "s", "workspace": str(tmp_path), "domains": {"a": "x", "b": "y"},
                                    "tracking": {"uri": "http://alice:s3cret@127.0.0.1:9/?token=t0k"}})
    tracker = Tracker(cfg, state=None)
    logged = []
    tracker._client = SimpleNamespace(log_batch=lambda run_id, params=(), **kw: logged.extend(params))
    tracker._log_config("parent")
    values = {p.key: p.value for p in logged}
    assert values["tracking.uri"] == "http://***@127.0.0.1:9/?token=***"
    assert not any("s3cret" in v or "t0k" in v for v in values.values())
    with caplog.at_level(logging.WARNING, logger="mixopt.tracking"):
        tracker._fail("ConnectionError: http://alice:s3cret@127.0.0.1:9/api/2.0 refused")
    assert "s3cret" not in tracker.error and "s3cret" not in caplog.text and "***@127.0.0.1" in caplog.text
    # MLflow gets the URI without them (its "View run" lines print that one) and the credentials as env
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "")
    assert client_uri(tracker.uri) == "http://127.0.0.1:9/?token=t0k"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
    assert client_uri("postgresql://u:p@db/x") == "postgresql://u:p@db/x"  # a database needs them in the URI


# --- processes ----------------------------------------------------------------------------------------
def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_stopping_mixopt_ui_stops_the_workers_it_started(tmp_path):
    fake = tmp_path / "bin" / "mlflow"  # `mlflow ui` as far as mixopt can tell: a server with a worker
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n"
                    "import os, subprocess, sys, time\n"
                    "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
                    "open(os.environ['FAKE_WORKER_PID'], 'w').write(str(w.pid))\n"
                    "time.sleep(300)\n")
    fake.chmod(0o755)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"name": "ui", "workspace": str(tmp_path / "ws"), "domains": {"a": "x", "b": "y"}}))
    pidfile = tmp_path / "worker.pid"
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "FAKE_WORKER_PID": str(pidfile)}
    ui = subprocess.Popen([sys.executable, "-m", "mixopt.cli", "ui", str(job), "--port", str(_closed_port())], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (pidfile.exists() and pidfile.read_text()):
        assert ui.poll() is None and time.time() < deadline, ui.communicate()
        time.sleep(0.1)
    worker = int(pidfile.read_text())
    try:
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(30) == 130
        deadline = time.time() + 10
        while _running(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the worker outlived `mixopt ui`"
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)
