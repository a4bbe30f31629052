"""What `mixopt submit` sends, and its one-line errors, without a cluster."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest
import yaml

from mixopt.cli import main
from mixopt.config import load_job_config
from mixopt.errors import ConfigError
from mixopt.service import ServiceError, cluster_status, rewrite_job_for_cluster, submit_search

JOB = """\
name: demo
workspace: ws
domains:
  code: corpus/code
  prose: {path: corpus/prose, max_documents: 10}
  web: {hf: some/dataset}
tokenizer: {vocab_size: 512, path: tok/tokenizer.json}
ray: {num_cpus: 4}
"""


@pytest.fixture
def job_file(tmp_path) -> Path:
    path = tmp_path / "jobs" / "job.yaml"
    path.parent.mkdir()
    path.write_text(JOB)
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_paths_resolve_next_to_the_local_file_by_default(job_file):
    raw = rewrite_job_for_cluster(job_file, tracking_uri="http://127.0.0.1:5000")
    base = job_file.parent.resolve()
    assert raw["workspace"] == str(base / "ws")
    assert raw["domains"]["code"] == str(base / "corpus/code")
    assert raw["domains"]["prose"] == {"path": str(base / "corpus/prose"), "max_documents": 10}
    assert raw["domains"]["web"] == {"hf": "some/dataset"}
    assert raw["tokenizer"]["path"] == str(base / "tok/tokenizer.json")
    assert raw["tracking"]["uri"] == "http://127.0.0.1:5000"
    # attach to the cluster the job runs on; the cluster decides the CPUs
    assert raw["ray"] == {"address": "auto"}


def test_cluster_root_rebases_relative_paths(job_file, tmp_path):
    raw = rewrite_job_for_cluster(job_file, cluster_root="/data/demo")
    assert raw["workspace"] == "/data/demo/ws"
    assert raw["domains"]["code"] == "/data/demo/corpus/code"
    assert raw["tokenizer"]["path"] == "/data/demo/tok/tokenizer.json"
    assert "tracking" not in raw
    # the rewritten file is a valid job whose paths are the cluster's
    out = tmp_path / "rewritten.yaml"
    out.write_text(yaml.safe_dump(raw))
    cfg = load_job_config(out)
    assert cfg.workspace == "/data/demo/ws" and cfg.ray.address == "auto"


def test_cluster_root_refuses_escapes(job_file):
    job_file.write_text(JOB.replace("corpus/code", "../../etc"))
    with pytest.raises(ConfigError, match=r"domains\.code: .*'\.\.'"):
        rewrite_job_for_cluster(job_file, cluster_root="/data/demo")
    with pytest.raises(ConfigError, match="must be an absolute path"):
        rewrite_job_for_cluster(job_file.with_name("job.yaml"), cluster_root="data")


def test_bad_job_file_fails_before_contacting_the_cluster(job_file):
    job_file.write_text(JOB.replace("name: demo", "name: ../evil"))
    # the address is unreachable: a ConfigError (not a connection error) proves validation came first
    with pytest.raises(ConfigError, match="name"):
        submit_search(job_file, address=f"http://127.0.0.1:{_closed_port()}")


def test_unreachable_cluster_is_a_one_line_error(job_file, capsys):
    address = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ServiceError, match=f"cannot reach the Ray Jobs API at {address}"):
        cluster_status(address, "raysubmit_x")
    assert main(["submit", str(job_file), "--address", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Ray Jobs API") and "\n" not in err


def test_bad_address_and_token_file(job_file, monkeypatch, tmp_path):
    with pytest.raises(ServiceError, match="expected the Jobs API URL"):
        cluster_status("ftp://x", "j")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(ServiceError, match="RAY_AUTH_TOKEN_PATH"):
        cluster_status("http://127.0.0.1:1", "j")


def test_token_over_plain_http_to_a_remote_host_warns(monkeypatch):
    from mixopt.service import _check_address

    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 64)
    with pytest.warns(UserWarning, match="clear text to 10.1.2.3"):
        assert _check_address("10.1.2.3:8265") == "http://10.1.2.3:8265"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_address("http://127.0.0.1:8265")
        _check_address("https://ray.example.com")
