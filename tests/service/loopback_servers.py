"""Test harness (not part of the library): a loopback service topology without Docker: a Ray head (dashboard + Jobs API) and an MLflow server.

Each server runs as a subprocess in its own process group (``start_new_session=True``) and is stopped by
that group id — SIGTERM, then SIGKILL after a grace period — never by process name, so other Ray or
MLflow instances on the machine are left alone (``ray stop`` would kill them all). Everything listens on
127.0.0.1 on free ports. Used by the service integration test and ``experiments/browser_check.py``;
the same shapes run in ``docker-compose.yml`` for a real deployment.

>>> with start_mlflow_server(tmp_dir) as mlflow_srv, start_ray_head(tmp_dir, token=tok) as head:  # doctest: +SKIP
...     job_id = submit_search("job.yaml", address=head.address, tracking_uri=mlflow_srv.uri)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mixopt.errors import MixoptError

__all__ = ["LocalServer", "free_port", "start_mlflow_server", "start_ray_head"]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """A server subprocess that leads its own process group. ``uri`` is what clients connect to."""

    name: str
    uri: str
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)
    cleanup: list[Path] = field(default_factory=list)  # removed after stop()
    grace_s: float = 10.0  # SIGTERM -> SIGKILL delay
    ready_urls: list[tuple[str, dict[str, str] | None]] = field(default_factory=list)  # GET 200 = ready
    ready_log_text: str | None = None  # ... and this text is in the log

    @property
    def address(self) -> str:
        return self.uri

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, n_chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM the process group, wait up to ``grace_s`` (default ``self.grace_s``), SIGKILL the rest.

        The process tree is collected first: some children (Ray's worker processes) start their own
        sessions, so they are signalled by pid as well as through the group.
        """
        if self.extra.get("_stopped"):
            return  # never signal a (possibly reused) group id twice
        self.extra["_stopped"] = True
        try:
            self._stop(grace_s)
        finally:
            for path in self.cleanup:
                shutil.rmtree(path, ignore_errors=True)

    def _stop(self, grace_s: float | None) -> None:
        import psutil  # a Ray dependency

        pid = self.process.pid  # start_new_session=True: the leader's pid is the group id
        try:
            others = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            others = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        for p in others:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(p.pid) != pid:
                    p.terminate()

        def running(p: psutil.Process) -> bool:
            try:
                return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False

        deadline = time.monotonic() + (self.grace_s if grace_s is None else grace_s)
        while time.monotonic() < deadline:
            # WNOWAIT: the leader stays an unreaped zombie, so its pid (= our group id) cannot be reused
            # before the final killpg below.
            leader_done = self.process.returncode is not None or (
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            )
            if leader_done and not any(running(p) for p in others):
                break
            time.sleep(0.2)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        for p in others:
            if running(p):
                with contextlib.suppress(psutil.Error):
                    p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def wait_ready(self, timeout_s: float = 120.0) -> LocalServer:
        """Block until every ready URL answers 200; stop the server and raise :class:`MixoptError` if not."""
        deadline = time.monotonic() + timeout_s
        while self.ready_log_text and self.ready_log_text not in self.log_tail(1 << 20):
            if not self.alive() or time.monotonic() > deadline:
                what = "exited early" if not self.alive() else f"not ready after {timeout_s:.0f} s"
                self.stop()
                raise MixoptError(f"{self.name} {what} (see {self.log_path}): {self.log_tail(300)!r}")
            time.sleep(0.5)
        for url, headers in self.ready_urls:
            _wait_http(self, url, max(1.0, deadline - time.monotonic()), headers)
        return self

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _spawn(name: str, cmd: list[str], log_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    return proc, log_path


def _wait_http(server: LocalServer, url: str, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if not server.alive():
            server.stop()
            raise MixoptError(f"{server.name} exited early (see {server.log_path}): {server.log_tail(400)!r}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.5)
    server.stop()
    raise MixoptError(f"{server.name} not ready after {timeout_s:.0f} s at {url} ({last}); log: {server.log_path}")


def _base_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # `ray`, `mlflow`, `mixopt` of this venv
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.update(extra or {})
    return env


def start_mlflow_server(
    work_dir: str | os.PathLike, *, port: int | None = None, wait: bool = True, timeout_s: float = 120.0
) -> LocalServer:
    """Start ``mlflow server`` on 127.0.0.1 with a sqlite backend and proxied artifacts under ``work_dir``.

    One worker process (``--workers 1``). Returns when ``/health`` answers (``wait=False``: at once; call
    ``server.wait_ready()`` later, e.g. after starting Ray in parallel); ``server.uri`` is the tracking
    URI (``http://127.0.0.1:<port>``).
    """
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
        "--artifacts-destination", str(work / "mlartifacts"), "--serve-artifacts",
    ]  # fmt: skip
    proc, log = _spawn("mlflow", cmd, work / "logs", _base_env(None))
    server = LocalServer("mlflow server", f"http://127.0.0.1:{port}", proc, log, {"port": port})
    server.ready_urls = [(f"{server.uri}/health", None)]
    return server.wait_ready(timeout_s) if wait else server


def start_ray_head(
    work_dir: str | os.PathLike | None = None,
    *,
    num_cpus: int = 2,
    token: str | None = None,
    object_store_memory: int = 100 * 1024**2,
    env: dict[str, str] | None = None,
    wait: bool = True,
    timeout_s: float = 120.0,
) -> LocalServer:
    """Start ``ray start --head --block`` on 127.0.0.1 with the dashboard (Jobs API) on a free port.

    With ``token``, the head runs with ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` (Ray >= 2.52 token
    authentication); clients must send the same token. ``server.uri`` is the Jobs API address
    (``http://127.0.0.1:<dashboard port>``) and ``server.extra["gcs_address"]`` the GCS address.
    Ray's session files go to a fresh short temp dir (Unix socket paths are limited to ~100 bytes).
    The dashboard listens on 127.0.0.1 only; Ray itself replaces a loopback node IP by the machine's
    address for its internal (GCS, raylet) ports, which token auth protects.
    """
    log_dir = Path(work_dir or tempfile.mkdtemp(prefix="mixopt-ray-logs-")).resolve()
    temp_dir = Path(tempfile.mkdtemp(prefix="mxray-"))
    port, dash, client, agent = free_port(), free_port(), free_port(), free_port()
    cmd = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--port", str(port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
        "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
        "--num-cpus", str(num_cpus), "--object-store-memory", str(object_store_memory),
        "--temp-dir", str(temp_dir), "--disable-usage-stats",
    ]  # fmt: skip
    extra = dict(env or {})
    if token:
        extra |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    proc, log = _spawn("ray-head", cmd, log_dir, _base_env(extra))
    server = LocalServer(
        "ray head", f"http://127.0.0.1:{dash}", proc, log, {"gcs_address": f"127.0.0.1:{port}"}, [temp_dir],
        grace_s=3.0,  # `ray start --block` waits on a raylet that ignores SIGTERM; nothing to flush
    )
    # /api/gcs_healthz is open without a token; /api/version needs it when auth is on, so it proves the
    # Jobs API is up *and* accepts our token.
    headers = {"Authorization": f"Bearer {token}"} if token else None
    server.ready_urls = [(f"{server.uri}/api/gcs_healthz", None), (f"{server.uri}/api/version", headers)]
    # the dashboard can answer before the raylet has registered; `ray start` prints this once it has
    server.ready_log_text = "Ray runtime started"
    return server.wait_ready(timeout_s) if wait else server
