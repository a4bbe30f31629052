"""The service topology on loopback, without Docker: a token-protected Ray head (Jobs API) and an MLflow
server as real subprocesses; a tiny search submitted with `mixopt submit` must land in MLflow."""

from __future__ import annotations

import io
import math
import os
import secrets
import time
from pathlib import Path

import pytest
import yaml
from loopback_servers import start_mlflow_server, start_ray_head

from mixopt.cli import main
from mixopt.service import ServiceError, cluster_status, print_cluster_status, stream_logs, wait_for_job

pytestmark = pytest.mark.integration

TOKEN = secrets.token_hex(32)


@pytest.fixture(scope="module")
def token_env():
    """The submitter's side of token auth: RAY_AUTH_TOKEN in this process, restored afterwards."""
    old = os.environ.get("RAY_AUTH_TOKEN")
    os.environ["RAY_AUTH_TOKEN"] = TOKEN
    yield TOKEN
    if old is None:
        os.environ.pop("RAY_AUTH_TOKEN", None)
    else:
        os.environ["RAY_AUTH_TOKEN"] = old


@pytest.fixture(scope="module")
def topology(tmp_path_factory, token_env):
    """(ray head, mlflow server), started in parallel, stopped by process group at the module's end."""
    work = tmp_path_factory.mktemp("service")
    mlflow_srv = start_mlflow_server(work / "mlflow", wait=False)
    try:
        head = start_ray_head(work / "ray", num_cpus=2, token=TOKEN, env={"OMP_NUM_THREADS": "1"}, wait=False)
    except BaseException:
        mlflow_srv.stop()
        raise
    with mlflow_srv, head:
        head.wait_ready(180)
        mlflow_srv.wait_ready(180)
        yield head, mlflow_srv
    # stopped by process group: no live member of either group is left (orphaned zombies may linger
    # until PID 1 reaps them), and Ray's session dir is gone
    for server in (head, mlflow_srv):
        deadline = time.monotonic() + 15  # SIGKILLed members need to be scheduled to die on a loaded machine
        while (live := _live_group_members(server.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert live == [], server.name
    assert not any(p.exists() for p in head.cleanup)


def _live_group_members(pgid: int) -> list[str]:
    import psutil

    live = []
    for p in psutil.process_iter(["name", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                live.append(f"{p.pid} {p.info['name']}")
        except (ProcessLookupError, psutil.Error):
            pass
    return live


def test_jobs_api_requires_the_token(topology, monkeypatch):
    head, _ = topology
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    with pytest.raises(ServiceError, match="refused the request.*set RAY_AUTH_TOKEN"):
        cluster_status(head.uri, "raysubmit_nope")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    with pytest.raises(ServiceError, match="refused the request.*does not match"):
        cluster_status(head.uri, "raysubmit_nope")


def test_unknown_job_id_is_a_one_line_error(topology):
    head, _ = topology
    with pytest.raises(ServiceError, match="raysubmit_nope"):
        cluster_status(head.uri, "raysubmit_nope")


def _tiny_job(demo_corpus: Path, tmp_path: Path) -> Path:
    domains = sorted(p.name for p in demo_corpus.iterdir() if p.is_dir())
    job = {
        "name": "svc-tiny",
        "workspace": "ws",  # relative: must resolve next to this file, not in Ray's working dir
        "seed": 0,
        "domains": {d: str(demo_corpus / d) for d in domains},
        "tokenizer": {"vocab_size": 512, "sample_bytes_per_domain": 100_000},
        "data": {"val_tokens": 2048},
        "proxy": {"preset": "dense-tiny", "tokens": 20_000, "seq_len": 64, "batch_size": 8,
                  "eval_points": 2, "eval_tokens": 1024},
        "search": {"strategy": "bo", "n_init": 2, "batch_size": 1, "candidates": 256},
        "budget": {"runs": 3},
    }  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def test_tiny_search_through_the_jobs_api_lands_in_mlflow(topology, demo_corpus, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    head, mlflow_srv = topology
    job_file = _tiny_job(demo_corpus, tmp_path)
    assert main(["submit", str(job_file), "--address", head.uri, "--tracking-uri", mlflow_srv.uri]) == 0
    job_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert job_id.startswith("mixopt-svc-tiny-")

    state = wait_for_job(head.uri, job_id, timeout_s=240, poll_s=2)
    log = io.StringIO()
    stream_logs(head.uri, job_id, out=log)
    assert state.status == "SUCCEEDED", f"{state.message}\n{log.getvalue()[-3000:]}"
    assert state.entrypoint == "mixopt search job.yaml" and state.metadata == {"mixopt_job": "svc-tiny"}

    out = io.StringIO()
    assert print_cluster_status(head.uri, job_id, out=out) == 0
    assert out.getvalue().startswith(f"{job_id}: SUCCEEDED")
    assert main(["logs", job_id, "--address", head.uri]) == 0
    assert capsys.readouterr().out == log.getvalue()
    # --follow streams over the websocket and returns once the (finished) job's log is drained
    assert main(["logs", job_id, "--follow", "--address", head.uri]) == 0
    followed = capsys.readouterr()
    assert "proposal" in followed.out and f"{job_id}: SUCCEEDED" in followed.err

    # the job state went to the workspace next to the job file (relative path rebased at submission)
    assert (tmp_path / "ws" / "jobs" / "svc-tiny").is_dir()

    client = MlflowClient(tracking_uri=mlflow_srv.uri)
    exp = client.get_experiment_by_name("mixopt/svc-tiny")
    assert exp is not None
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`mixopt.role` = 'job'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(children) == 3
    domains = sorted(p.name for p in demo_corpus.iterdir() if p.is_dir())
    mixtures = set()
    for child in children:
        weights = [float(child.data.params[f"w.{d}"]) for d in domains]
        assert abs(sum(weights) - 1.0) < 1e-3 and min(weights) >= 0
        mixtures.add(tuple(round(w, 4) for w in weights))
        for d in domains:
            loss = child.data.metrics[f"final_loss/{d}"]
            assert math.isfinite(loss) and 0 < loss < 2 * math.log(512)
        history = client.get_metric_history(child.info.run_id, f"val_loss/{domains[0]}")
        assert len(history) >= 2  # losses over steps, not just the final one
    assert len(mixtures) == 3  # three different mixtures were tried
