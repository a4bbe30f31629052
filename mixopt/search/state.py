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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mixopt.errors import ConfigError, MixoptError

__all__ = ["JobState", "Launch", "RunEntry", "atomic_write_text", "config_hash", "read_runs"]

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

    ``objective`` is the job objective of ``final_loss`` (lower is better; None when failed), recomputed
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
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    *lines, tail = raw.split(b"\n")  # every element of `lines` was terminated by a newline
    entries: list[RunEntry] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entries.append(RunEntry.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError):
            raise MixoptError(f"{path}: unreadable line {i + 1}; fix or remove it") from None
    if tail.strip():
        log.warning("%s: dropping a torn last line (%d bytes, the writer was killed mid-write)", path, len(tail))
        if repair:
            with open(path, "r+b") as f:
                f.truncate(len(raw) - len(tail))
                f.flush()
                os.fsync(f.fileno())
    # The same run id twice can only come from a crash between append and bookkeeping: keep the first.
    seen: set[str] = set()
    unique = []
    for e in entries:
        if e.run_id not in seen:
            seen.add(e.run_id)
            unique.append(e)
    return unique


def best_run(runs: list[RunEntry], fidelity: int | None = None) -> RunEntry | None:
    """The ok run with the lowest objective among ``runs`` (optionally only those at ``fidelity``)."""
    cands = [r for r in runs if r.ok and r.objective is not None and (fidelity is None or r.fidelity == fidelity)]
    return min(cands, key=lambda r: r.objective) if cands else None


class JobState:
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
    def open(cls, job_dir: str | Path, *, config_hash: str, name: str = "", objective=None) -> JobState:
        """Create the job directory or resume it. Raises ConfigError if the saved config hash differs."""
        job_dir = Path(job_dir)
        job_dir.mkdir(parents=True, exist_ok=True)
        meta = cls._read_meta(job_dir)
        if meta is None:
            meta = {
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
            }
        elif meta.get("config_hash") != config_hash:
            raise ConfigError(
                f"{job_dir}: job exists with a different data/tokenizer/proxy/seed config "
                f"(hash {meta.get('config_hash')} != {config_hash}); use a new job name or restore the config"
            )
        runs = read_runs(job_dir / RUNS_FILE, repair=True)
        st = cls(job_dir, runs, meta)
        st.apply_objective(objective)
        done = {r.run_id for r in runs}
        # A run appended just before a crash may still be listed as pending: it is finished.
        for rid in list(st.meta["pending"]):
            if rid in done:
                del st.meta["pending"][rid]
        st.save()
        return st

    @classmethod
    def load(cls, job_dir: str | Path, objective=None) -> JobState:
        """Open an existing job read-only-ish (for status/report); MixoptError if there is none."""
        job_dir = Path(job_dir)
        meta = cls._read_meta(job_dir)
        if meta is None:
            raise MixoptError(f"{job_dir}: no search job here yet (run `mixopt search` first)")
        st = cls(job_dir, read_runs(job_dir / RUNS_FILE), meta)
        st.apply_objective(objective)
        return st

    def apply_objective(self, objective) -> None:
        """Set every successful run's ``objective`` from its final losses (``None``: keep what is stored)."""
        if objective is None:
            return
        from mixopt.objective import Objective

        obj = Objective.parse(objective)
        for r in self.runs:
            if r.ok and r.final_loss:
                names = list(r.final_loss)
                r.objective = float(obj.values([[r.final_loss[t] for t in names]], names)[0])

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
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise MixoptError(f"{p}: unreadable ({e}); the file is only ever replaced atomically") from None

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

    def add_pending(self, launch: Launch) -> None:
        """Record a launch as in flight (persisted before it is submitted)."""
        with self._lock:
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
            self.meta["pending"].pop(entry.run_id, None)
            self.meta["retries"].pop(entry.run_id, None)
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
    @property
    def ok_runs(self) -> list[RunEntry]:
        return [r for r in self.runs if r.ok]

    @property
    def failed_runs(self) -> list[RunEntry]:
        return [r for r in self.runs if not r.ok]

    def best(self, fidelity: int | None = None) -> RunEntry | None:
        """The finished run with the lowest objective (optionally at one fidelity)."""
        return best_run(self.runs, fidelity)
