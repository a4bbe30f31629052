"""CLI verbs of the mixture search: ``search``, ``status``, ``report``, ``propose``, ``ui``.

Thin: parse, validate, call :mod:`mixopt.search` / :mod:`mixopt.tracking`, print.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from mixopt.config import load_job_config
from mixopt.errors import MixoptError
from mixopt.security import redact_uri

__all__ = ["register"]

_DEFAULT_JOB = "job.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the search verbs to the `mixopt` parser."""
    p = sub.add_parser("search", help="run (or resume) a mixture search job",
                       description="Run the proxy search of JOB; a job that exists is resumed.")
    p.add_argument("job", help="job YAML file")
    p.add_argument("--address", help="Ray cluster address (default: cfg.ray.address, RAY_ADDRESS, or embedded)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--rebuild-state", action="store_true",
                   help="rebuild a missing state.json from runs.jsonl (no run is re-run; see docs/search.md)")
    p.add_argument("--reuse", metavar="PREVIOUS",
                   help="reuse a previous job's proposal for the domains whose data did not change (its job "
                        "directory or job YAML; sets reuse.job, see docs/search.md)")
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("status", help="runs done/running/failed, best so far, budget left")
    p.add_argument("job", help="job YAML file (with --address: a job id from `mixopt submit`)")
    p.add_argument("--address", metavar="URL", help="Ray Jobs API URL: show a cluster job's state")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("report", help="the proposal, run tables and where the plots are")
    p.add_argument("job", help="job YAML file")
    p.add_argument("--top", type=int, default=10, help="best runs to list")
    p.add_argument("--runs-csv", type=Path, metavar="PATH",
                   help="also write every run (weight/, loss/, eval/ columns) as CSV, for `mixopt fit`/`replay`")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("propose", help="re-fit the surrogate on the finished runs and propose")
    p.add_argument("job", help="job YAML file")
    p.set_defaults(handler=cmd_propose)

    p = sub.add_parser("ui", help="start the MLflow UI for a job's tracking store (127.0.0.1)")
    p.add_argument("job", nargs="?", default=_DEFAULT_JOB, help=f"job YAML file (default {_DEFAULT_JOB})")
    p.add_argument("--host", default="127.0.0.1", help="bind host (default loopback; others warn)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--print-command", action="store_true", help="print the mlflow command instead of running it")
    p.set_defaults(handler=cmd_ui)


def _ui_hint(job: str) -> str:
    return f"mixopt ui {shlex.quote(job)}"


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the search like Ctrl-C. ``mixopt cancel`` (Ray's job stop) and ``kill`` send SIGTERM;
    by default it ended the process on the spot, leaving the job's MLflow parent run RUNNING and an
    embedded Ray runtime behind. As an interrupt, the search shuts Ray down, ends the parent run KILLED
    and exits 130; in-flight runs stay pending and a resume re-runs them."""
    def _stop(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_search(args) -> int:
    from mixopt.search import run_search
    from mixopt.search.report import format_proposal

    cfg = load_job_config(args.job)
    if args.reuse:  # the flag names the previous job; the file may still set reuse.mode
        mode = cfg.reuse.mode if cfg.reuse is not None else "collapse"
        cfg = load_job_config(args.job, {"reuse": {"job": str(Path(args.reuse).resolve()), "mode": mode}})
    with _sigterm_as_interrupt():
        result = run_search(cfg, address=args.address, progress=not args.quiet, rebuild_state=args.rebuild_state)
    n_ok, n_failed = len(result.ok_runs), len(result.failed_runs)
    print(f"\n{cfg.name}: {n_ok} ok and {n_failed} failed runs ({result.new_runs} new this session); "
          f"budget {100 * result.budget_fraction:.0f}% used")
    if result.proposal is not None:
        print(format_proposal(result.proposal))
        print(f"proposal: {result.job_dir / 'proposal.json'}")
    elif result.failed_runs:
        print(f"no proposal: every run failed (first: {result.failed_runs[0].reason})", file=sys.stderr)
    else:
        print("no proposal: no successful run")
    if result.plots:
        print(f"plots: {result.plots[0].parent.resolve()}/")
    print(f"runs: {result.job_dir / 'runs.jsonl'}")
    print(f"MLflow: {redact_uri(result.tracking_uri)} (experiment {result.experiment!r})")
    if result.unlogged and cfg.tracking.enabled:
        print(f"MLflow: {len(result.unlogged)} run(s) not logged ({result.tracking_error}); "
              f"results are on disk; `mixopt report {args.job}` back-fills them")
    print(f"browse: {_ui_hint(args.job)}")
    return 1 if result.proposal is None and result.failed_runs else 0


def _state(cfg):
    from mixopt.objective import Objective
    from mixopt.search import JobState

    return JobState.load(cfg.job_dir, objective=Objective.parse(cfg.search.objective))


def cmd_status(args) -> int:
    if args.address:
        from mixopt.service import print_cluster_status

        return print_cluster_status(args.address, args.job)
    from mixopt.search.report import format_status

    cfg = load_job_config(args.job)
    print(format_status(cfg, _state(cfg)))
    return 0


def cmd_report(args) -> int:
    from mixopt.search.offline import backfill_tracking, propose_from_state
    from mixopt.search.report import format_cv_table, format_proposal, format_runs, format_status, plot_paths

    cfg = load_job_config(args.job)
    _state(cfg)  # a one-line error when there is no job yet
    unlogged, err = backfill_tracking(cfg)
    path = cfg.job_dir.resolve() / "proposal.json"
    proposal, _, state = propose_from_state(cfg)  # reuses proposal.json when it is current
    print(format_status(cfg, state))
    print()
    print(format_proposal(proposal) if proposal else "no proposal: no successful run")
    if proposal and proposal.cv_table:
        print(format_cv_table(proposal.cv_table))
    print()
    print(format_runs(state, args.top))
    plots = plot_paths(cfg.job_dir)
    if plots:
        print("\nplots:")
        for p in plots:
            print(f"  {p}")
    print(f"\nfiles: {path}, {path.parent / 'runs.jsonl'}")
    if args.runs_csv:
        from mixopt.search.report import runs_frame
        from mixopt.search.state import atomic_write_text

        atomic_write_text(args.runs_csv, runs_frame(state).to_csv(index=False))
        print(f"runs table: {args.runs_csv}")
    from mixopt.tracking import tracking_uri

    print(f"MLflow: {redact_uri(tracking_uri(cfg))} (experiment {cfg.experiment_name()!r}); browse: {_ui_hint(args.job)}")
    if unlogged:
        print(f"MLflow: {len(unlogged)} run(s) still not logged ({err})")
    return 0


def cmd_propose(args) -> int:
    from mixopt.search.offline import propose_from_state
    from mixopt.search.report import format_proposal

    cfg = load_job_config(args.job)
    proposal, plots, _ = propose_from_state(cfg)
    if proposal is None:
        raise MixoptError(f"{cfg.job_dir}: no successful run yet; nothing to propose")
    print(format_proposal(proposal))
    print(f"proposal: {cfg.job_dir.resolve() / 'proposal.json'}")
    if plots:
        print(f"plots: {plots[0].parent.resolve()}/")
    return 0


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The ``mlflow ui`` command line for a tracking store."""
    exe = shutil.which("mlflow")
    base = [exe] if exe else [sys.executable, "-m", "mlflow"]
    return [*base, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


def runs_table_url(base: str, cfg) -> str:
    """The UI address of the job's runs table: ``<base>/#/experiments/<id>/runs?workflowType=machine_learning``
    once a search has created the experiment (its id is in ``state.json``), else ``base``.

    MLflow 3's UI opens every experiment in its GenAI view (an overview of traces) unless the address names
    the model-training view; the tag ``mlflow.experimentKind`` that mixopt sets does it only on versions
    without the GenAI / model-training switch."""
    import json

    try:
        exp_id = json.loads((cfg.job_dir / "state.json").read_text())["mlflow"]["experiment_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return base
    return f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning"


def cmd_ui(args) -> int:
    from mixopt.security import ExposedServerWarning, check_bind_host

    if not Path(args.job).exists():
        raise MixoptError(f"{args.job}: no such job file (give the job YAML: mixopt ui path/to/job.yaml)")
    cfg = load_job_config(args.job)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExposedServerWarning)
        host = check_bind_host(args.host, what="mixopt ui")
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    from mixopt.tracking import tracking_uri

    uri = tracking_uri(cfg)
    cmd = ui_command(uri, host, args.port)
    shown = "[::1]" if host == "::1" else host
    url = runs_table_url(f"http://{shown}:{args.port}", cfg)
    print(f"MLflow UI for {cfg.name}: {url}  (store {redact_uri(uri)}; Ctrl-C stops it)", flush=True)
    if args.print_command:
        print(redact_uri(shlex.join(cmd)))
        return 0
    # The server leads its own process group; Ctrl-C or SIGTERM stops it and every process it started.
    proc = subprocess.Popen(cmd, start_new_session=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop_process_tree(proc)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_process_tree(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop ``proc`` and all its descendants: SIGTERM, then SIGKILL to what is left after ``timeout`` s.

    ``mlflow ui`` starts task-queue workers in sessions of their own, so signalling the server's process
    group misses them and they outlive it (re-parented to init). The descendants are listed (from
    ``/proc``) while the tree is still intact, before anything is signalled.
    """
    pids = [proc.pid, *_descendants(proc.pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        while (pids := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pids:
            return


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux ``/proc``; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc")
