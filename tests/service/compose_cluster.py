"""Driving the live compose cluster that ``scripts/cluster.sh up`` started: its addresses (from ``.env``),
``docker compose`` calls for the faults, the ``mixopt`` CLI as a user types it, and MLflow's REST API.

Used by ``tests/service/test_cluster.py`` (the live smoke) and ``experiments/cluster_scale.py``. Nothing
here starts or stops the cluster itself: ``scripts/cluster.sh`` does, and exports ``DOCKER_HOST``,
``RAY_AUTH_TOKEN`` and ``MIXOPT_CLUSTER_COMPOSE`` (the compose command line with its files).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

__all__ = ["ComposeCluster", "docker_unavailable", "tiny_job"]

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_ROOT = "/data/smoke"  # demo corpus and workspaces on the cluster's shared volume


def docker_unavailable() -> str | None:
    """Why the live cluster cannot run here (no docker CLI, no compose, no daemon answering), else None."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    if not os.environ.get("MIXOPT_CLUSTER_COMPOSE") and shutil.which("docker-compose") is None:
        return "no docker-compose (run through `bash scripts/cluster.sh smoke`)"
    try:
        rc = subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode
    except subprocess.TimeoutExpired:
        rc = 1
    if rc != 0:
        return f"no Docker daemon answers at {os.environ.get('DOCKER_HOST') or 'the default socket'}"
    return None


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def tiny_job(name: str, *, runs: int = 6, tokens: int = 60_000) -> dict:
    """A small search over the demo corpus (paths relative: rebased under ``--cluster-root``); proxies take
    a few seconds each so that faults can land while the search runs."""
    domains = ["arithmetic", "code", "lowent", "noise", "prose", "records"]
    return {
        "name": name,
        "workspace": "workspace",
        "seed": 0,
        "domains": {d: {"path": d} for d in domains},
        "tokenizer": {"vocab_size": 512, "sample_bytes_per_domain": 100_000},
        "data": {"val_tokens": 4096},
        "proxy": {"preset": "dense-tiny", "tokens": tokens, "seq_len": 64, "batch_size": 8,
                  "eval_points": 3, "eval_tokens": 2048},
        "search": {"strategy": "bo", "n_init": 2, "batch_size": 2, "candidates": 256},
        "budget": {"runs": runs},
    }  # fmt: skip


class ComposeCluster:
    """The running cluster: addresses, compose calls, the ``mixopt`` CLI and MLflow's REST API."""

    def __init__(self, root: Path = ROOT):
        env = _env_file(root / ".env")
        self.root = root
        self.host_network = os.environ.get("MIXOPT_HOST_NETWORK", "1") == "1"
        if self.host_network:
            self.address = f"http://127.0.0.1:{env.get('MIXOPT_RAY_DASHBOARD_PORT', '28265')}"
            self.mlflow = f"http://127.0.0.1:{env.get('MIXOPT_MLFLOW_PORT', '25000')}"
            self.job_tracking_uri = self.mlflow  # containers share the host's loopback
        else:
            self.address, self.mlflow, self.job_tracking_uri = (
                "http://127.0.0.1:8265", "http://127.0.0.1:5000", "http://mlflow:5000")
        cmd = os.environ.get("MIXOPT_CLUSTER_COMPOSE")
        if cmd:
            self._compose = shlex.split(cmd)
        else:
            file = root / ("docker/compose.host.yml" if self.host_network else "docker-compose.yml")
            project = os.environ.get("MIXOPT_COMPOSE_PROJECT") or env.get("COMPOSE_PROJECT_NAME", "mixopt")
            self._compose = ["docker-compose", "-p", project,
                             "--env-file", str(root / ".env"), "-f", str(file)]
        os.environ.setdefault("RAY_AUTH_TOKEN", env.get("RAY_AUTH_TOKEN", ""))
        self.mixopt_bin = str(Path(sys.executable).parent / "mixopt")

    # --- compose -------------------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 300) -> str:
        p = subprocess.run([*self._compose, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if p.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)} failed: {p.stderr.strip()[-500:]}")
        return p.stdout

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def running(self, container: str) -> bool:
        out = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", container],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        return out == "true"

    def head_exec(self, *cmd: str, timeout: float = 300) -> str:
        return self.compose("exec", "-T", "ray-head", *cmd, timeout=timeout)

    def alive_ray_nodes(self) -> int:
        out = self.head_exec("python", "-c", "import ray; ray.init(address='auto', log_to_driver=False, "
                             "logging_level='ERROR'); print(sum(1 for n in ray.nodes() if n['Alive']))")
        return int(out.strip().splitlines()[-1])

    def scale_workers(self, n: int) -> None:
        """Run exactly ``n`` Ray workers and wait until Ray sees them (head + n nodes)."""
        self.compose("up", "-d", "--no-recreate", "--scale", f"ray-worker={n}", "ray-worker", timeout=600)
        self.wait(lambda: self.alive_ray_nodes() == n + 1, 240, f"{n} Ray workers joined")

    def prepare_demo_data(self) -> None:
        self.head_exec("sh", "-c", f"test -f {CLUSTER_ROOT}/job.yaml || mixopt demo-data {CLUSTER_ROOT}")

    # --- the mixopt CLI ------------------------------------------------------------------------------
    def mixopt(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([self.mixopt_bin, *args], capture_output=True, text=True, timeout=timeout)

    def write_job(self, directory: Path, job: dict) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "job.yaml"
        path.write_text(yaml.safe_dump(job, sort_keys=False))
        return path

    def submit(self, job_file: Path) -> str:
        p = self.mixopt("submit", str(job_file), "--address", self.address,
                        "--tracking-uri", self.job_tracking_uri, "--cluster-root", CLUSTER_ROOT)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip().splitlines()[-1]

    def follow(self, job_id: str, log_path: Path) -> subprocess.Popen:
        """``mixopt logs --follow JOB`` in the background, its output in ``log_path``."""
        fh = open(log_path, "w")  # noqa: SIM115 - closed by the process's end (the child holds it)
        return subprocess.Popen([self.mixopt_bin, "logs", "--follow", job_id, "--address", self.address],
                                stdout=fh, stderr=subprocess.STDOUT)

    def status(self, job_id: str) -> str:
        """The job's status word from ``mixopt status --address ... JOB`` (e.g. RUNNING, SUCCEEDED)."""
        p = self.mixopt("status", "--address", self.address, job_id)
        lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith(f"{job_id}: ")]
        assert lines, p.stdout + p.stderr
        return lines[0].split(": ", 1)[1].split()[0]

    # --- MLflow REST API -----------------------------------------------------------------------------
    def rest(self, method: str, path: str, body: dict | None = None, *, retry_s: float = 120) -> dict:
        """One MLflow REST call; connection errors (a restarting server) are retried for ``retry_s``."""
        url = f"{self.mlflow}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        deadline = time.monotonic() + retry_s
        while True:
            req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def experiment_id(self, name: str) -> str | None:
        try:
            return self.rest("GET", "experiments/get-by-name", {"experiment_name": name})["experiment"]["experiment_id"]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def search_runs(self, experiment_id: str, filter_string: str) -> list[dict]:
        runs, token = [], None
        while True:
            body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self.rest("POST", "runs/search", body)
            runs += page.get("runs", [])
            token = page.get("next_page_token")
            if not token:
                return runs

    def job_runs(self, job_name: str) -> tuple[list[dict], list[dict]]:
        """(parent runs, child runs) of ``mixopt/<job_name>`` through the REST API ([] before it exists)."""
        exp = self.experiment_id(f"mixopt/{job_name}")
        if exp is None:
            return [], []
        parents = self.search_runs(exp, "tags.`mixopt.role` = 'job'")
        children = []
        for p in parents:
            children += self.search_runs(exp, f"tags.`mlflow.parentRunId` = '{p['info']['run_id']}'")
        return parents, children

    def metric_history(self, run_id: str, key: str) -> list[dict]:
        return self.rest("GET", "metrics/get-history", {"run_id": run_id, "metric_key": key}).get("metrics", [])

    # --- waiting -------------------------------------------------------------------------------------
    @staticmethod
    def wait(cond, timeout_s: float, what: str, poll_s: float = 2.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                got = cond()
            except (RuntimeError, OSError, ValueError):
                got = None
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for: {what}")
            time.sleep(poll_s)


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def metrics(run: dict) -> dict[str, float]:
    return {m["key"]: float(m["value"]) for m in run["data"].get("metrics", [])}


def params(run: dict) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}
