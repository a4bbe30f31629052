"""A search job's state on disk: the run table (``runs.jsonl``) and the launch book (``state.json``).

Layout of ``cfg.job_dir``::

    runs.jsonl     one JSON line per finished proxy run (ok or failed after retries), append-only,
                   flushed and fsync'ed before anything else happens with the result
    state.json     rewritten atomically (temp file + os.replace): config hash, initial design,
                   pending launches (in flight when the driver stopped), retry reasons, MLflow ids,
                   elapsed wall time, the ids not yet logged to MLflow
    proposal.json  the latest proposal (atomic)
    plots/         PNG figures

A driver killed with SIGKILL at any moment loses no finished run: a result is on disk before it is
logged, fitted or displayed. On resume, finished runs are loaded and the launches that were pending are
re-run with the same mixture, fidelity and seed.

The two files are checked against each other whenever the job is opened (``state.json`` lists the ids
of the finished runs): a run that ``state.json`` says finished but ``runs.jsonl`` lacks is refused with a
one-line error and its fix -- unless it is the last line, torn by a killed writer, which is re-queued
(pending again, same seed). ``state.json`` missing while runs exist is refused too; ``rebuild=True``
(``mixopt search --rebuild-state``) rebuilds it from the runs. Nothing is ever re-run or lost silently.

>>> st = JobState.open("/tmp/job", config_hash="abc")      # doctest: +SKIP
>>> st.add_pending(Launch("r0000", {"a": .5, "b": .5}, 0, "dense-tiny", 50_000, 11, "init"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mixopt.errors import ConfigError, MixoptError
from mixopt.search.workers import run_seed

__all__ = ["JobState", "Launch", "RunEntry", "RunListing", "atomic_write_text", "check_rebuild", "config_hash", "read_runs",
           "rebuild_meta"]

log = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
STATE_FILE = "state.json"
_STATE_VERSION = 1


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def config_hash(cfg) -> str:
    """Hash of the config sections that make finished runs comparable (data, tokenizer, proxy, seed).

    Budget, parallelism, retries, strategy, surrogate, objective, constraints, tracking and Ray settings
    may change between resumes; anything that changes what a proxy run *means* may not.
    """
    d = cfg.model_dump(mode="json")
    relevant = {k: d[k] for k in ("domains", "tokenizer", "data", "proxy", "seed")}
    relevant["domains"] = {n: src.settings() for n, src in cfg.domains.items()}  # new source keys only when set
    if d.get("reuse"):  # what the search decides over (absent without reuse: old hashes stay valid)
        relevant["reuse"] = d["reuse"]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Launch:
    """One proxy run to train: a mixture at a fidelity with a seed.

    ``fidelity`` indexes ``cfg.proxy.fidelity_list()`` (0 = cheapest, last = target); ``source`` is
    ``"init"`` (initial design), ``"ask"`` (chosen by the strategy), ``"verify"`` (a low-trust proposal run
    while budget was left) or ``"confirm"`` (the final proposal, outside the budget).
    """

    run_id: str
    weights: dict[str, float]
    fidelity: int
    preset: str
    tokens: int
    seed: int
    source: str
    cost: float = 0.0  # estimated FLOPs

    @classmethod
    def from_dict(cls, d: dict) -> Launch:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class RunEntry:
    """A finished proxy run as stored in ``runs.jsonl`` (one line).

    ``metrics`` holds the run's downstream evaluation results (``eval/<task>/<metric>``, from the record).
    ``objective`` is the job objective of ``final_loss`` and the ``metrics`` it names (lower is better; None
    when failed, or when the run lacks a metric the objective names), recomputed
    with the job's current objective whenever the state is opened (:meth:`JobState.apply_objective`);
    ``record`` is ``proxies.RunRecord.to_dict()`` of the last attempt (None if no record came back);
    ``attempts`` lists the failure reasons of the attempts before the last one.
    """

    run_id: str
    weights: dict[str, float]
    fidelity: int
    preset: str
    tokens: int
    seed: int
    source: str
    status: str  # "ok" | "failed"
    objective: float | None
    final_loss: dict[str, float]
    flops: float
    wall_time: float
    reason: str | None = None
    attempts: list[str] = field(default_factory=list)
    record: dict | None = None
    finished_at: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=True)

    @classmethod
    def from_dict(cls, d: dict) -> RunEntry:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def read_runs(path: Path, *, repair: bool = False) -> list[RunEntry]:
    """Read ``runs.jsonl``. A torn last line (the writer was killed mid-write) is ignored, and with
    ``repair=True`` cut off so that the next append starts on a fresh line."""
    entries, torn = _read_runs(Path(path))
    if torn and repair:
        _cut_torn_tail(Path(path))
    return entries


def _read_runs(path: Path) -> tuple[list[RunEntry], bool]:
    """(the complete lines' runs, first of each id kept; whether a torn last line was dropped)."""
    if not path.exists():
        return [], False
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MixoptError(f"{path}: cannot read ({e.strerror})") from None
    *lines, tail = raw.split(b"\n")  # every element of `lines` was terminated by a newline
    entries: list[RunEntry] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MixoptError(f"{path}: line {i + 1} is not valid UTF-8 (byte {e.start}); the file is corrupt: "
                              "restore it from a backup") from None
        try:
            entries.append(RunEntry.from_dict(json.loads(text)))
        except (json.JSONDecodeError, TypeError, KeyError):
            raise MixoptError(f"{path}: unreadable line {i + 1}; fix or remove it") from None
    torn = bool(tail.strip())
    if torn:
        log.warning("%s: dropping a torn last line (%d bytes, the writer was killed mid-write)", path, len(tail))
    # The same run id twice can only come from a crash between append and bookkeeping: keep the first.
    seen: set[str] = set()
    unique = []
    for e in entries:
        if e.run_id not in seen:
            seen.add(e.run_id)
            unique.append(e)
    return unique, torn


def _cut_torn_tail(path: Path) -> None:
    raw = path.read_bytes()
    with open(path, "r+b") as f:
        f.truncate(raw.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())


def _next_index(run_ids) -> int:
    """One more than the largest numeric part of ``r0007`` / ``c0012`` style ids (0 for none)."""
    nums = [int(r[1:]) for r in run_ids if r[1:].isdigit()]
    return max(nums) + 1 if nums else 0


def _fresh_meta(config_hash: str, name: str) -> dict[str, Any]:
    return {
        "version": _STATE_VERSION,
        "name": name,
        "config_hash": config_hash,
        "initial_design": None,
        "next_index": 0,
        "asks": 0,
        "pending": {},
        "retries": {},
        "elapsed_s": 0.0,
        "sessions": 0,
        "mlflow": {},
        "unlogged": [],
        "proposal": None,
        "finished": [],
    }


def check_rebuild(cfg, runs: list[RunEntry]) -> None:
    """Refuse to rebuild ``state.json`` from runs that this config did not make (fidelity or seed differ)."""
    fids = cfg.proxy.fidelity_list()
    for r in runs:
        f = fids[r.fidelity] if 0 <= r.fidelity < len(fids) else None
        seed_ok = r.run_id[1:].isdigit() and r.seed == run_seed(cfg.seed, int(r.run_id[1:]))
        if f is None or (f.preset, f.tokens) != (r.preset, r.tokens) or not seed_ok:
            raise ConfigError(f"{cfg.job_dir / RUNS_FILE}: run {r.run_id} ({r.preset} x {r.tokens} tokens, seed "
                              f"{r.seed}) was not made with this job's proxy/seed config; --rebuild-state needs "
                              "the config the runs were made with")


def rebuild_meta(runs: list[RunEntry], *, config_hash: str, name: str = "") -> dict[str, Any]:
    """A ``state.json`` rebuilt from the finished runs alone (``mixopt search --rebuild-state``).

    Run ids continue after the largest one, the initial design is drawn again from the seed and continues
    after the initial runs that finished, every run is queued for the MLflow back-fill (which skips runs
    already logged), and the elapsed time is the span of the runs' own timestamps. Lost: launches that were
    in flight (they are not re-run) and retry counts.
    """
    meta = _fresh_meta(config_hash, name)
    ids = [r.run_id for r in runs]
    ends = [r.finished_at for r in runs if r.finished_at]
    starts = [r.finished_at - r.wall_time for r in runs if r.finished_at]
    meta.update(
        next_index=_next_index(ids),
        # design entries started: distinct (mixture, fidelity) among the initial runs (repeats share one)
        init_next=len({(json.dumps(r.weights, sort_keys=True), r.fidelity) for r in runs if r.source == "init"}),
        asks=sum(r.source == "ask" for r in runs), finished=ids, unlogged=list(ids),
        verified=[[round(float(w), 6) for w in r.weights.values()] for r in runs if r.source == "verify"],
        elapsed_s=float(max(ends) - min(starts)) if ends else 0.0, rebuilt_at=time.time(),
    )
    return meta


def _missing_state(job_dir: Path, runs: list[RunEntry]) -> str:
    return (f"{job_dir / STATE_FILE} is missing but {RUNS_FILE} holds {len(runs)} finished run(s); run "
            "`mixopt search JOB --rebuild-state` to rebuild it from them (no run is re-run), or move the job "
            "folder away to start afresh")


def _reconcile(job_dir: Path, runs: list[RunEntry], meta: dict, torn: bool) -> str | None:
    """Check ``state.json`` (``meta``, updated in place) against the runs read from ``runs.jsonl``.

    Every run ``meta["finished"]`` lists must be in the file. The one exception is the last run appended
    when the file's last line is torn: it is pending again (its launch is in ``meta["last_run"]``). Runs in
    the file that ``meta`` does not list yet (appended just before a crash) are added. Returns a note when a
    run was re-queued; raises MixoptError naming the missing runs and the fix otherwise.
    """
    ids = [r.run_id for r in runs]
    have = set(ids)
    if "finished" not in meta:  # a state.json from before this check: trust the file
        meta["finished"] = list(ids)
    missing = [rid for rid in meta["finished"] if rid not in have]
    last = meta.get("last_run") or {}
    note = None
    if torn and missing == [last.get("run_id")]:
        rid = missing.pop()
        meta["finished"].remove(rid)
        meta["pending"][rid] = last
        meta["unlogged"] = [u for u in meta.get("unlogged", []) if u != rid]
        note = f"{rid}'s line in {RUNS_FILE} was torn: it is pending again and re-runs with the same seed"
    if missing:
        path = job_dir / RUNS_FILE
        shown = ", ".join(missing[:3]) + ("..." if len(missing) > 3 else "")
        where = "is missing" if not path.exists() else f"lacks {len(missing)} of them ({shown})"
        raise MixoptError(f"{path}: state.json records {len(meta['finished'])} finished run(s) but the file {where}; "
                          "restore it from a backup (nothing was changed; to start the job afresh, move the job "
                          "folder away)")
    listed = set(meta["finished"])
    meta["finished"] += [rid for rid in ids if rid not in listed]
    for rid in have:  # a run appended just before a crash may still be listed as pending: it is finished
        meta["pending"].pop(rid, None)
    meta["next_index"] = max(int(meta.get("next_index", 0)), _next_index(list(have) + list(meta["pending"])))
    return note


def best_run(runs: list[RunEntry], fidelity: int | None = None) -> RunEntry | None:
    """The ok run with the lowest objective among ``runs`` (optionally only those at ``fidelity``)."""
    cands = [r for r in runs if r.ok and r.objective is not None and (fidelity is None or r.fidelity == fidelity)]
    return min(cands, key=lambda r: r.objective) if cands else None


class RunListing:
    """``ok_runs`` / ``failed_runs`` of anything holding a ``runs`` list (the job's state, a search's result)."""

    runs: list[RunEntry]

    @property
    def ok_runs(self) -> list[RunEntry]:
        return [r for r in self.runs if r.ok]

    @property
    def failed_runs(self) -> list[RunEntry]:
        return [r for r in self.runs if not r.ok]


class JobState(RunListing):
    """The persistent state of one search job (thread-safe; the loop and the tracker share it).

    Use :meth:`open` (creates or resumes). ``runs`` are the finished runs in finishing order;
    ``pending`` the launches submitted but not finished; ``meta`` everything else in ``state.json``.
    """

    def __init__(self, job_dir: Path, runs: list[RunEntry], meta: dict[str, Any]):
        self.job_dir = Path(job_dir)
        self.runs = runs
        self.meta = meta
        self._lock = threading.RLock()

    # --- opening ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, job_dir: str | Path, *, config_hash: str, name: str = "", objective=None,
             rebuild: bool = False) -> JobState:
        """Create the job directory or resume it, after checking ``state.json`` against ``runs.jsonl``.

        Raises ConfigError if the saved config hash differs, MixoptError (one line, with the fix) when the
        two files disagree. ``rebuild``: rebuild a missing ``state.json`` from the runs (see
        :func:`rebuild_meta`) instead of refusing.
        """
        job_dir = Path(job_dir)
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MixoptError(f"{job_dir}: cannot create the job folder ({e.strerror}: {e.filename})") from None
        meta = cls._read_meta(job_dir)
        runs, torn = _read_runs(job_dir / RUNS_FILE)
        if meta is None:
            if runs and not rebuild:
                raise MixoptError(_missing_state(job_dir, runs))
            meta = rebuild_meta(runs, config_hash=config_hash, name=name) if runs else _fresh_meta(config_hash, name)
            if runs:
                log.warning("%s: rebuilt state.json from %d finished run(s) in runs.jsonl", job_dir, len(runs))
        elif meta.get("config_hash") != config_hash:
            raise ConfigError(
                f"{job_dir}: job exists with a different data/tokenizer/proxy/seed config "
                f"(hash {meta.get('config_hash')} != {config_hash}); use a new job name or restore the config"
            )
        note = _reconcile(job_dir, runs, meta, torn)
        if torn:
            _cut_torn_tail(job_dir / RUNS_FILE)
        if note:
            log.warning("%s: %s", job_dir, note)
        st = cls(job_dir, runs, meta)
        st.apply_objective(objective)
        st.save()
        return st

    @classmethod
    def load(cls, job_dir: str | Path, objective=None) -> JobState:
        """Open an existing job read-only (for status/report): the same checks as :meth:`open`, nothing
        written; MixoptError if there is no job."""
        job_dir = Path(job_dir)
        meta = cls._read_meta(job_dir)
        runs, torn = _read_runs(job_dir / RUNS_FILE)
        if meta is None:
            if runs:
                raise MixoptError(_missing_state(job_dir, runs))
            raise MixoptError(f"{job_dir}: no search job here yet (run `mixopt search` first)")
        _reconcile(job_dir, runs, meta, torn)
        st = cls(job_dir, runs, meta)
        st.apply_objective(objective)
        return st

    def apply_objective(self, objective) -> None:
        """Set every successful run's ``objective`` from its final losses and the eval metrics the objective
        names (``None``: keep what is stored)."""
        if objective is None:
            return
        from mixopt.objective import Objective

        obj = Objective.parse(objective)
        for r in self.runs:
            if r.ok and r.final_loss:
                values = {**(r.metrics or {}), **r.final_loss}
                names = list(r.final_loss) + [n for n in obj.names if n.startswith("eval/") and n not in r.final_loss]
                r.objective = (float(obj.values([[values[t] for t in names]], names)[0])
                               if all(t in values for t in names) else None)

    def proposal_is_current(self, key: str) -> bool:
        """Whether ``proposal.json`` was made from exactly these runs and settings (its key is ``key``)."""
        path = self.job_dir / "proposal.json"
        try:
            return json.loads(path.read_text()).get("context", {}).get("key") == key
        except (OSError, json.JSONDecodeError, AttributeError):
            return False

    @staticmethod
    def _read_meta(job_dir: Path) -> dict | None:
        p = job_dir / STATE_FILE
        if not p.exists():
            return None
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise MixoptError(f"{p}: unreadable ({str(e).splitlines()[0]}); restore it from a backup, or move it "
                              "away and run `mixopt search JOB --rebuild-state`") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("pending"), dict):
            raise MixoptError(f"{p}: not a job state file; restore it from a backup, or move it away and run "
                              "`mixopt search JOB --rebuild-state`")
        return meta

    # --- writing ------------------------------------------------------------------------------------
    def save(self) -> None:
        """Rewrite ``state.json`` atomically."""
        with self._lock:
            atomic_write_text(self.job_dir / STATE_FILE, json.dumps(self.meta, indent=1, sort_keys=True))

    def new_run_id(self, prefix: str = "r") -> str:
        with self._lock:
            i = int(self.meta["next_index"])
            self.meta["next_index"] = i + 1
            return f"{prefix}{i:04d}"

    def add_pending(self, *launches: Launch) -> None:
        """Record launches as in flight, in one write (persisted before they are submitted)."""
        with self._lock:
            for launch in launches:
                self.meta["pending"][launch.run_id] = asdict(launch)
            self.save()

    def pending_launches(self) -> list[Launch]:
        with self._lock:
            return [Launch.from_dict(d) for d in self.meta["pending"].values()]

    def record_retry(self, run_id: str, reason: str) -> int:
        """Note a failed attempt of ``run_id``; returns the number of failed attempts so far."""
        with self._lock:
            reasons = self.meta["retries"].setdefault(run_id, [])
            reasons.append(reason)
            self.save()
            return len(reasons)

    def retry_reasons(self, run_id: str) -> list[str]:
        with self._lock:
            return list(self.meta["retries"].get(run_id, []))

    def append_run(self, entry: RunEntry) -> None:
        """Persist a finished run: append + flush + fsync ``runs.jsonl``, then drop it from pending."""
        with self._lock:
            path = self.job_dir / RUNS_FILE
            with open(path, "a") as f:
                f.write(entry.to_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.runs.append(entry)
            launch = self.meta["pending"].pop(entry.run_id, None)
            self.meta["retries"].pop(entry.run_id, None)
            self.meta.setdefault("finished", []).append(entry.run_id)
            # the launch of the last line: if that line is ever torn, it is re-queued from here
            self.meta["last_run"] = launch or asdict(Launch(entry.run_id, entry.weights, entry.fidelity,
                                                            entry.preset, entry.tokens, entry.seed, entry.source,
                                                            entry.flops))
            if entry.run_id not in self.meta["unlogged"]:
                self.meta["unlogged"].append(entry.run_id)
            self.save()

    def mark_logged(self, run_ids: list[str]) -> None:
        with self._lock:
            gone = set(run_ids)
            self.meta["unlogged"] = [r for r in self.meta["unlogged"] if r not in gone]
            self.save()

    def set(self, **kv: Any) -> None:
        with self._lock:
            self.meta.update(kv)
            self.save()

    # --- reading ------------------------------------------------------------------------------------
    def best(self, fidelity: int | None = None) -> RunEntry | None:
        """The finished run with the lowest objective (optionally at one fidelity)."""
        return best_run(self.runs, fidelity)
