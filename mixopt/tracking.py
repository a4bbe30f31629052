"""MLflow tracking for a search job: one experiment per job, a parent run, a nested child run per proxy.

Layout (see ``docs/search.md``)::

    experiment  cfg.experiment_name()            (artifacts under <workspace>/mlartifacts for sqlite; tagged
    │                                            mlflow.experimentKind=custom_model_development: the UI
    │                                            opens on the runs table)
    └─ parent run "<job name>"                   tags mixopt.role=job; params: the flat job config;
       │                                         metrics best_objective / budget_fraction vs runs done,
       │                                         proposal/* (proposal/w.<domain>, and proposal/w.<group>
       │                                         for hierarchical domains); artifacts proposal.json,
       │                                         cv_table.json, runs.csv (every run), plots/
       └─ child run per proxy "<run id>"          tags mlflow.parentRunId, mixopt.run_id, strategy, status;
                                                  params w.<domain> (and w.<group>), preset, tokens, seed, fidelity;
                                                  metrics val_loss/<domain> (step = tokens seen), objective;
                                                  start/end = the run's own; artifact loss_curves.png

Everything is logged from one daemon thread with ``MlflowClient.log_batch`` (three calls per child run),
so a slow or dead server never stalls the search. Tracking is failure-tolerant: the first error marks the
tracker *down* for the session (one warning), results stay on disk, and the ids not yet logged stay in
``state.json`` (``unlogged``); the next ``mixopt search``/``report`` back-fills them. Logging is
idempotent: a run whose ``mixopt.run_id`` already has a child run is not logged twice.

Credentials in the tracking URI (``http://user:pass@host``) never reach a param, a log line, ``state.json``
or MLflow's own "View run" lines: the client gets the URI without them and reads them from
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (:func:`client_uri`); messages show
:func:`mixopt.security.redact_uri`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.hierarchy import group_totals
from mixopt.security import redact_uri, split_credentials

__all__ = ["Tracker", "check_tracking_server", "child_run_payload", "client_uri", "tracking_uri"]

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
_MAX_PARAMS = 100  # log_batch limits
_MAX_METRICS = 1000
_PARAM_LEN = 6000


def tracking_uri(cfg) -> str:
    """``tracking.uri`` from the job, else ``MLFLOW_TRACKING_URI``, else sqlite in the workspace."""
    return cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking_uri()


def client_uri(uri: str) -> str:
    """The URI to give ``MlflowClient``: an http(s) URI loses its ``user:password@`` part, which moves to
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` in this process's environment (MLflow sends
    them as basic auth and never prints them). Other URIs (a database URI needs its password) are kept."""
    if not uri.lower().startswith(("http://", "https://")):
        return uri
    clean, user, password = split_credentials(uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
    if password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return clean


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) tracking URI, check that its host accepts connections (within ``timeout`` s);
    a one-line MixoptError otherwise. Local stores (sqlite, files) pass."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as e:
        raise MixoptError(f"MLflow tracking server {redact_uri(uri)} is unreachable ({e.strerror or e}); start it, "
                          "fix the URI, or turn tracking off") from None


def _chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def child_run_payload(entry, strategy: str, groups: Sequence[str] = ()
                      ) -> tuple[dict[str, str], list[tuple[str, float, int]], dict[str, str]]:
    """(params, metrics as (key, value, step), tags) of one finished run (``RunEntry``); ``groups``: the
    job's group names, whose total weights are logged beside the leaves' (``w.web``, ``w.web/hq``)."""
    params = {f"w.{d}": f"{w:.6g}" for d, w in entry.weights.items()}
    params |= {f"w.{g}": f"{w:.6g}" for g, w in group_totals(entry.weights, groups).items()}
    params |= {"preset": entry.preset, "tokens": str(entry.tokens), "seed": str(entry.seed),
               "fidelity": str(entry.fidelity), "source": entry.source}
    metrics: list[tuple[str, float, int]] = []
    rec = entry.record or {}
    seen = rec.get("tokens_seen") or rec.get("steps") or []
    for d, losses in (rec.get("val_loss") or {}).items():
        for step, v in zip(seen, losses, strict=False):
            if v is not None and math.isfinite(float(v)):
                metrics.append((f"val_loss/{d}", float(v), int(step)))
    last = int(seen[-1]) if seen else int(entry.tokens)
    for d, v in entry.final_loss.items():
        if v is not None and math.isfinite(float(v)):
            metrics.append((f"final_loss/{d}", float(v), last))
    for name, v in (entry.metrics or {}).items():  # downstream evals: eval/<task>/<metric>
        if v is not None and math.isfinite(float(v)):
            metrics.append((name, float(v), last))
    if entry.objective is not None and math.isfinite(entry.objective):
        metrics.append(("objective", float(entry.objective), last))
    for key in ("flops", "wall_time"):
        v = getattr(entry, key)
        if v is not None and math.isfinite(float(v)):
            metrics.append((key, float(v), last))
    tags = {"strategy": strategy, "status": entry.status, "mixopt.run_id": entry.run_id,
            "mixopt.source": entry.source, "mixopt.attempts": str(len(entry.attempts) + 1)}
    if entry.reason:
        tags["mixopt.reason"] = entry.reason[:500]
    return params, metrics, tags


def loss_curve_figure(entry):
    """A matplotlib figure of one run's per-domain validation loss against tokens seen (None without a
    curve)."""
    rec = entry.record or {}
    seen, curves = rec.get("tokens_seen") or [], rec.get("val_loss") or {}
    if not seen or not curves:
        return None
    from matplotlib.figure import Figure  # no pyplot: this runs in the tracker's thread

    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for d, losses in curves.items():
        ax.plot(seen[: len(losses)], losses, marker="o", ms=3, label=f"{d} ({entry.weights.get(d, 0):.2f})")
    ax.set(xlabel="tokens seen", ylabel="validation loss (nats/token)",
           title=f"{entry.run_id}: {entry.preset}, {entry.tokens:,} tokens ({entry.status})")
    if len(seen) > 2:
        ax.set_xscale("log")
    ax.legend(fontsize=6, title="domain (weight)", title_fontsize=6)
    fig.tight_layout()
    return fig


def run_table_csv(runs) -> str:
    """Every run of the job as CSV (run id, status, source, fidelity, seed, objective, weights, final losses)."""
    import csv
    import io

    domains = list(dict.fromkeys(d for r in runs for d in r.weights))
    losses = list(dict.fromkeys(d for r in runs for d in r.final_loss))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run_id", "status", "source", "fidelity", "preset", "tokens", "seed", "objective", "flops",
                "wall_time", *(f"w.{d}" for d in domains), *(f"loss.{d}" for d in losses)])
    for r in runs:
        w.writerow([r.run_id, r.status, r.source, r.fidelity, r.preset, r.tokens, r.seed,
                    "" if r.objective is None else f"{r.objective:.6g}", f"{r.flops:.4g}", f"{r.wall_time:.3f}",
                    *(f"{r.weights.get(d, 0.0):.6g}" for d in domains),
                    *("" if r.final_loss.get(d) is None else f"{r.final_loss[d]:.6g}" for d in losses)])
    return buf.getvalue()


class Tracker:
    """Asynchronous, failure-tolerant MLflow logger for one job.

    ``state`` is the job's :class:`~mixopt.search.state.JobState` (for the parent run id and the
    ``unlogged`` list). Call :meth:`start`, then :meth:`log_run` per finished run, :meth:`log_progress`,
    :meth:`log_proposal`, and finally :meth:`close` (waits up to ``timeout`` seconds for the queue).
    """

    def __init__(self, cfg, state, *, enabled: bool | None = None):
        self.cfg = cfg
        self.state = state
        self.enabled = cfg.tracking.enabled if enabled is None else enabled
        self.uri = tracking_uri(cfg)
        self.shown_uri = redact_uri(self.uri)  # the only form that is printed, logged or stored
        self.down = False
        self.error: str | None = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._client = None
        self.opened: tuple[float | None, float | None] = (None, None)  # when the store was being opened
        self._logged: set[str] = set()
        self._q: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    # --- public API (called from the search loop; never raises) ------------------------------------
    def start(self, *, resume_status: str = "RUNNING") -> None:
        """Open the experiment and parent run (in the background) and queue the back-fill."""
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._worker, name="mixopt-mlflow", daemon=True)
        self._thread.start()
        self._submit(self._open)
        self.backfill()

    def backfill(self) -> None:
        """Queue every finished run listed as not yet logged."""
        ids = set(self.state.meta.get("unlogged", []))
        for entry in self.state.runs:
            if entry.run_id in ids:
                self.log_run(entry)

    def log_run(self, entry) -> None:
        self._submit(lambda: self._log_child(entry))

    def log_progress(self, step: int, metrics: dict[str, float]) -> None:
        """Parent-run metrics at ``step`` (runs finished), e.g. best objective and budget fraction."""
        self._submit(lambda: self._log_parent_metrics(step, metrics))

    def log_proposal(self, proposal: dict, step: int, artifacts: list[Path]) -> None:
        """Log the proposal (JSON artifact + metrics), the CV table and figure files on the parent."""
        self._submit(lambda: self._log_proposal(proposal, step, artifacts))

    def log_tags(self, tags: dict[str, str]) -> None:
        """Tags on the parent run (e.g. ``mixopt.fallbacks.<name>`` counts)."""
        from mlflow.entities import RunTag

        if tags:
            self._submit(lambda: self._client.log_batch(self.parent_run_id,
                                                        tags=[RunTag(k, str(v)) for k, v in tags.items()]))

    def close(self, status: str = "FINISHED", timeout: float = 60.0) -> None:
        """Finish the parent run and wait (bounded) for queued logging to drain."""
        if self._thread is None:
            return
        self._submit(lambda: self._client.set_terminated(self.parent_run_id, status=status))
        self._q.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._fail(f"gave up waiting {timeout:.0f}s for MLflow at {self.shown_uri}")
        self._thread = None

    @property
    def run_url_hint(self) -> str:
        return self.shown_uri

    # --- worker thread ------------------------------------------------------------------------------
    def _submit(self, fn: Callable[[], Any]) -> None:
        if self.enabled and self._thread is not None and not self.down:
            self._q.put(fn)

    def _worker(self) -> None:
        while True:
            fn = self._q.get()
            if fn is None:
                return
            if self.down:
                continue
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - tracking must never kill the search
                self._fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def _fail(self, why: str) -> None:
        if not self.down:
            self.down = True
            self.error = why = redact_uri(why)
            log.warning("MLflow tracking at %s failed (%s); results stay on disk and the runs not logged "
                        "are back-filled by the next `mixopt search`/`mixopt report`", self.shown_uri, why[:200])

    def _open(self) -> None:
        self.opened = (time.time(), None)
        self._open_store()
        self.opened = (self.opened[0], time.time())

    def _open_store(self) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self._client = client = MlflowClient(tracking_uri=client_uri(self.uri))
        name = self.cfg.experiment_name()
        exp = client.get_experiment_by_name(name)
        if exp is None:
            loc = None
            if self.uri.startswith("sqlite:") or self.uri.startswith("file:") or "://" not in self.uri:
                loc = (Path(self.cfg.workspace_dir) / "mlartifacts").resolve().as_uri()
            self.experiment_id = client.create_experiment(name, artifact_location=loc)
        else:
            self.experiment_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
        if exp is None or exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            # a model-training experiment: the UI opens on the runs table, not on the GenAI traces page
            client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        saved = self.state.meta.get("mlflow", {})
        parent = None
        if saved.get("parent_run_id") and saved.get("uri") == self.shown_uri:
            try:
                parent = client.get_run(saved["parent_run_id"]).info.run_id
            except mlflow.exceptions.MlflowException:
                parent = None
        if parent is None:
            found = client.search_runs([self.experiment_id], "tags.`mixopt.role` = 'job'", max_results=1)
            parent = found[0].info.run_id if found else None
        if parent is None:
            run = client.create_run(self.experiment_id, run_name=self.cfg.name,
                                    tags={"mixopt.role": "job", "mixopt.job": self.cfg.name,
                                          "strategy": self.cfg.search.strategy})
            parent = run.info.run_id
            self._log_config(parent)
        else:
            client.update_run(parent, status="RUNNING")
        self.parent_run_id = parent
        self.state.set(mlflow={"uri": self.shown_uri, "experiment_id": self.experiment_id, "parent_run_id": parent})
        # Which runs already have a child (a crash may have hit after logging but before bookkeeping).
        token = None
        while True:
            page = client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'",
                                      max_results=1000, page_token=token)
            self._logged |= {r.data.tags.get("mixopt.run_id") for r in page}
            token = page.token
            if not token:
                break
        already = [r for r in self.state.meta.get("unlogged", []) if r in self._logged]
        if already:
            self.state.mark_logged(already)

    def _log_config(self, run_id: str) -> None:
        from mlflow.entities import Param

        flat = self.cfg.to_flat_dict()
        if flat.get("tracking.uri"):
            flat["tracking.uri"] = redact_uri(flat["tracking.uri"])
        params = [Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
                  for k, v in sorted(flat.items())]
        params = [Param(p.key, p.value[:_PARAM_LEN]) for p in params]
        for chunk in _chunks(params, _MAX_PARAMS):
            self._client.log_batch(run_id, params=chunk)

    def _log_child(self, entry) -> None:
        from mlflow.entities import Metric, Param

        if entry.run_id in self._logged:
            self.state.mark_logged([entry.run_id])
            return
        client = self._client
        params, metrics, tags = child_run_payload(entry, self.cfg.search.strategy, list(self.cfg.groups))
        tags |= {"mlflow.parentRunId": self.parent_run_id, "mixopt.job": self.cfg.name}
        # the run's real start and end (it is logged after it finished): durations in the UI are true
        end = int(1000 * (entry.finished_at or time.time()))
        start = end - int(1000 * max(0.0, entry.wall_time or 0.0))
        run = client.create_run(self.experiment_id, run_name=entry.run_id, tags=tags, start_time=start)
        rid = run.info.run_id
        mlist = [Metric(k, v, end, s) for k, v, s in metrics]
        plist = [Param(k, v[:_PARAM_LEN]) for k, v in params.items()]
        client.log_batch(rid, metrics=mlist[:_MAX_METRICS], params=plist[:_MAX_PARAMS])
        for rest in _chunks(plist[_MAX_PARAMS:], _MAX_PARAMS):
            client.log_batch(rid, params=rest)
        for rest in _chunks(mlist[_MAX_METRICS:], _MAX_METRICS):
            client.log_batch(rid, metrics=rest)
        fig = loss_curve_figure(entry)
        if fig is not None:
            client.log_figure(rid, fig, "loss_curves.png")
        client.set_terminated(rid, status="FINISHED" if entry.ok else "FAILED", end_time=end)
        self._logged.add(entry.run_id)
        self.state.mark_logged([entry.run_id])

    def _log_parent_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        for chunk in _chunks(ms, _MAX_METRICS):
            self._client.log_batch(self.parent_run_id, metrics=chunk)

    def _log_proposal(self, proposal: dict, step: int, artifacts: list[Path]) -> None:
        weights = proposal.get("weights", {})
        metrics = {f"proposal/w.{d}": w for d, w in weights.items()}
        groups = proposal.get("context", {}).get("groups") or []
        metrics |= {f"proposal/w.{g}": w for g, w in group_totals(weights, groups).items()}
        for key in ("predicted", "std", "observed"):
            if isinstance(proposal.get(key), (int, float)):
                metrics[f"proposal/{key}"] = float(proposal[key])
        self._log_parent_metrics(step, metrics)
        self._client.log_dict(self.parent_run_id, proposal, "proposal.json")
        self._client.log_text(self.parent_run_id, run_table_csv(self.state.runs), "runs.csv")
        if proposal.get("cv_table") is not None:
            self._client.log_dict(self.parent_run_id, {"cv_table": proposal["cv_table"]}, "cv_table.json")
        for path in artifacts:
            if Path(path).exists():
                self._client.log_artifact(self.parent_run_id, str(path), artifact_path="plots")
