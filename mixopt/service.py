"""Run a mixture search on a Ray cluster through the Ray Jobs API.

``submit_search`` uploads *only* the job file (the cluster has mixopt installed) as the job's
``runtime_env`` working directory and starts ``mixopt search job.yaml`` there; ``cluster_status`` and
``stream_logs`` follow it. The uploaded copy of the job file is rewritten so that it runs on the cluster:

* relative paths (``workspace``, ``domains.*.path``, ``tokenizer.path``) become absolute — resolved next
  to the local job file (a cluster that shares this filesystem, e.g. the loopback topology), or under
  ``cluster_root`` (a directory on the cluster, e.g. the compose ``/data`` volume; ``..`` is refused);
* ``tracking.uri`` is set from ``tracking_uri`` (and ``MLFLOW_TRACKING_URI`` in the job's environment),
  so the search logs to the cluster's MLflow server;
* ``ray.address`` becomes ``auto``: the search attaches to the cluster the job runs on.

Token authentication (Ray >= 2.52): when ``RAY_AUTH_TOKEN`` (or a file named by ``RAY_AUTH_TOKEN_PATH``) is
set, every request carries ``Authorization: Bearer <token>``; otherwise Ray's own lookup applies
(``RAY_AUTH_MODE=token`` and ``~/.ray/auth_token``).

>>> job_id = submit_search("job.yaml", address="http://127.0.0.1:8265",
...                        tracking_uri="http://mlflow:5000")   # doctest: +SKIP
>>> cluster_status("http://127.0.0.1:8265", job_id).status      # doctest: +SKIP
'RUNNING'
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO
from urllib.parse import urlparse

import yaml

from mixopt.config import load_job_config
from mixopt.errors import ConfigError, MixoptError
from mixopt.security import check_relative, is_loopback

__all__ = [
    "DEFAULT_ADDRESS",
    "ClusterJobStatus",
    "ServiceError",
    "cluster_status",
    "default_address",
    "job_client",
    "print_cluster_status",
    "rewrite_job_for_cluster",
    "stop_job",
    "stream_logs",
    "submit_search",
    "wait_for_job",
]

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class ServiceError(MixoptError, RuntimeError):
    """The Ray Jobs API could not be reached, refused our token, or does not know the job."""


@dataclass(frozen=True)
class ClusterJobStatus:
    """What the Jobs API knows about one submission. Times are Unix seconds (``None`` until known)."""

    job_id: str
    status: str  # PENDING | RUNNING | SUCCEEDED | FAILED | STOPPED
    message: str
    entrypoint: str
    start_time: float | None
    end_time: float | None
    metadata: dict[str, str]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def default_address() -> str:
    """``$RAY_API_SERVER_ADDRESS`` (the variable ``ray job`` uses), else ``http://127.0.0.1:8265``."""
    return os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS


def _token() -> str | None:
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            return Path(path).expanduser().read_text().strip() or None
        except OSError as e:
            raise ServiceError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token ({e.strerror})") from None
    return None


def _check_address(address: str) -> str:
    url = urlparse(address if "://" in address else f"http://{address}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ServiceError(f"--address {address!r}: expected the Jobs API URL, e.g. {DEFAULT_ADDRESS}")
    if url.scheme == "http" and not is_loopback(url.hostname) and _token():
        warnings.warn(
            f"sending the Ray auth token in clear text to {url.hostname}; use https or an SSH tunnel "
            "(ssh -L 8265:127.0.0.1:8265 host) to a loopback-bound dashboard",
            stacklevel=3,
        )
    return url.geturl()


def job_client(address: str | None = None):
    """A connected ``ray.job_submission.JobSubmissionClient`` (with the auth header when a token is set).

    Raises :class:`ServiceError` (one line) when the address is unreachable or the token is refused.
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    address = _check_address(address or default_address())
    token = _token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as e:
        hint = "set RAY_AUTH_TOKEN to the cluster's token" if not token else "RAY_AUTH_TOKEN does not match"
        raise ServiceError(f"Ray Jobs API at {address} refused the request: {_first_line(e)} ({hint})") from None
    except (ConnectionError, OSError, RuntimeError, ValueError) as e:
        raise ServiceError(f"cannot reach the Ray Jobs API at {address}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _rebase(value: str | None, key: str, base: Path, cluster_root: str | None) -> str | None:
    """Make one path from the job file absolute for the cluster (URIs and ``hf`` sources untouched)."""
    if value is None or "://" in value:
        return value
    if cluster_root is None:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())
    if PurePosixPath(value).is_absolute():
        return value
    try:
        check_relative(value)
    except MixoptError as e:
        raise ConfigError(f"{key}: {e} (it is resolved under --cluster-root {cluster_root})") from None
    return str(PurePosixPath(cluster_root) / value)


def rewrite_job_for_cluster(
    config_path: str | os.PathLike,
    *,
    tracking_uri: str | None = None,
    cluster_root: str | None = None,
) -> dict[str, Any]:
    """The job file as a dict, ready to run on the cluster (see the module docstring for the rewrites).

    The file is validated first (a bad file is a :class:`ConfigError` here, not a failed cluster job).
    ``cluster_root`` must be an absolute POSIX path on the cluster.
    """
    path = Path(config_path)
    load_job_config(path)  # validate locally: one-line ConfigError before anything is sent
    raw = yaml.safe_load(path.read_text())
    if cluster_root is not None and not PurePosixPath(cluster_root).is_absolute():
        raise ConfigError(f"--cluster-root {cluster_root!r} must be an absolute path on the cluster")
    base = path.resolve().parent
    raw["workspace"] = _rebase(raw.get("workspace", "workspace"), "workspace", base, cluster_root)
    for name, src in raw["domains"].items():
        if isinstance(src, str):
            raw["domains"][name] = _rebase(src, f"domains.{name}", base, cluster_root)
        elif isinstance(src, dict) and src.get("path") is not None:
            src["path"] = _rebase(src["path"], f"domains.{name}.path", base, cluster_root)
    tok = raw.get("tokenizer") or {}
    if tok.get("path") is not None:
        tok["path"] = _rebase(tok["path"], "tokenizer.path", base, cluster_root)
    if tracking_uri:
        raw.setdefault("tracking", {})["uri"] = tracking_uri
    ray_section = raw.setdefault("ray", {})
    ray_section["address"] = "auto"
    ray_section.pop("num_cpus", None)  # the cluster's resources decide; ray.init() refuses both
    with tempfile.TemporaryDirectory() as tmp:  # the rewritten file must still be a valid job
        check = Path(tmp) / "job.yaml"
        check.write_text(yaml.safe_dump(raw, sort_keys=False))
        load_job_config(check)
    return raw


def submit_search(
    config_path: str | os.PathLike,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    cluster_root: str | None = None,
    submission_id: str | None = None,
    env_vars: dict[str, str] | None = None,
) -> str:
    """Submit ``mixopt search job.yaml`` to the cluster at ``address``; return the submission id.

    Only the (rewritten) job file is uploaded, as the job's working directory. The id is
    ``mixopt-<job name>-<8 hex>`` unless ``submission_id`` is given.
    """
    raw = rewrite_job_for_cluster(config_path, tracking_uri=tracking_uri, cluster_root=cluster_root)
    client = job_client(address)
    uri = (raw.get("tracking") or {}).get("uri")
    env = {"PYTHONUNBUFFERED": "1", **({"MLFLOW_TRACKING_URI": uri} if uri else {}), **(env_vars or {})}
    sid = submission_id or f"mixopt-{raw['name']}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="mixopt-submit-") as tmp:
        (Path(tmp) / "job.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        try:
            return client.submit_job(
                entrypoint="mixopt search job.yaml",
                submission_id=sid,
                runtime_env={"working_dir": tmp, "env_vars": env},
                metadata={"mixopt_job": raw["name"]},
            )
        except (RuntimeError, ConnectionError, OSError) as e:
            raise ServiceError(f"submitting {config_path} failed: {_first_line(e)}") from None


def cluster_status(address: str | None, job_id: str) -> ClusterJobStatus:
    """The job's state as the Jobs API reports it; :class:`ServiceError` for an unknown id."""
    client = job_client(address)
    try:
        info = client.get_job_info(job_id)
    except (RuntimeError, ConnectionError, OSError) as e:
        raise ServiceError(f"job {job_id!r}: {_first_line(e)}") from None
    ms = lambda t: t / 1000.0 if t else None  # noqa: E731  (the API reports milliseconds)
    return ClusterJobStatus(
        job_id=job_id,
        status=str(info.status.value if hasattr(info.status, "value") else info.status),
        message=info.message or "",
        entrypoint=info.entrypoint,
        start_time=ms(info.start_time),
        end_time=ms(info.end_time),
        metadata=dict(info.metadata or {}),
    )


def print_cluster_status(address: str | None, job_id: str, out: TextIO | None = None) -> int:
    """Print one job's state (for ``mixopt status --address``); exit code 0 unless it FAILED/STOPPED."""
    out = out or sys.stdout
    st = cluster_status(address, job_id)
    took = ""
    if st.start_time:
        took = f" ({(st.end_time or time.time()) - st.start_time:.0f} s)"
    print(f"{st.job_id}: {st.status}{took}", file=out)
    if st.message:
        print(f"  {st.message}", file=out)
    return 1 if st.status in ("FAILED", "STOPPED") else 0


def wait_for_job(address: str | None, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 1.0) -> ClusterJobStatus:
    """Poll until the job is SUCCEEDED/FAILED/STOPPED; :class:`ServiceError` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = cluster_status(address, job_id)
        if st.terminal:
            return st
        if time.monotonic() > deadline:
            raise ServiceError(f"job {job_id} still {st.status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def stream_logs(
    address: str | None, job_id: str, *, follow: bool = False, out: TextIO | None = None
) -> ClusterJobStatus:
    """Write the job's driver log to ``out`` (default stdout; all of it, or with ``follow`` until the end)."""
    out = out or sys.stdout
    client = job_client(address)
    try:
        if not follow:
            out.write(client.get_job_logs(job_id))
        else:

            async def tail() -> None:
                async for chunk in client.tail_job_logs(job_id):
                    out.write(chunk)
                    out.flush()

            asyncio.run(tail())
    except (RuntimeError, ConnectionError, OSError) as e:
        raise ServiceError(f"job {job_id!r}: {_first_line(e)}") from None
    out.flush()
    return cluster_status(address, job_id)


def stop_job(address: str | None, job_id: str) -> bool:
    """Ask the cluster to stop the job; True if it was running."""
    client = job_client(address)
    try:
        return bool(client.stop_job(job_id))
    except (RuntimeError, ConnectionError, OSError) as e:
        raise ServiceError(f"job {job_id!r}: {_first_line(e)}") from None
