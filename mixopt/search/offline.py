"""Work on an existing job without running proxies: re-fit and propose, back-fill MLflow.

Used by ``mixopt propose`` and ``mixopt report``; no Ray needed. Both write (``proposal.json``,
``state.json``), so both take the job's lock: while a search runs they refuse in one line.
"""

from __future__ import annotations

from pathlib import Path

from mixopt.errors import MixoptError
from mixopt.objective import Objective
from mixopt.proposal import Proposal
from mixopt.search.lock import JobLock
from mixopt.search.proposal import build_proposal, proposal_key
from mixopt.search.space import SearchSpace
from mixopt.search.state import JobState, config_hash

__all__ = ["backfill_tracking", "propose_from_state"]


def _open(cfg) -> JobState:
    state = JobState.load(cfg.job_dir, objective=Objective.parse(cfg.search.objective))
    if state.meta.get("config_hash") != config_hash(cfg):
        raise MixoptError(f"{cfg.job_dir}: the job was run with a different data/tokenizer/proxy/seed config")
    return state


def propose_from_state(cfg, *, track: bool = True) -> tuple[Proposal | None, list[Path], JobState]:
    """The job strategy's proposal on the finished runs (writes proposal.json and plots, and logs a new
    proposal to MLflow when ``track``; reuses them when nothing changed)."""
    with JobLock(cfg.job_dir, purpose="propose", create=False):
        return _propose(cfg, track)


def _propose(cfg, track: bool) -> tuple[Proposal | None, list[Path], JobState]:
    from mixopt.data import load_prepared

    state = _open(cfg)
    try:
        data = load_prepared(cfg.data_dir)
    except (FileNotFoundError, OSError) as e:
        raise MixoptError(f"{cfg.data_dir}: prepared data missing ({e}); run `mixopt search` first") from None
    fresh = not state.proposal_is_current(proposal_key(cfg, state.runs))
    proposal, plots = build_proposal(cfg, state, SearchSpace.from_data(cfg, data))
    if track and fresh and proposal is not None and cfg.tracking.enabled:
        from mixopt.tracking import Tracker

        tracker = Tracker(cfg, state)
        tracker.start()
        tracker.log_proposal(proposal.to_dict(), len(state.runs), plots)
        tracker.close(status="FINISHED")
    return proposal, plots, state


def backfill_tracking(cfg, timeout: float = 120.0) -> tuple[list[str], str | None]:
    """Log every finished run not yet in MLflow; returns (ids still unlogged, tracking error or None)."""
    from mixopt.tracking import Tracker

    with JobLock(cfg.job_dir, purpose="report", create=False):
        state = _open(cfg)
        if not cfg.tracking.enabled or not state.meta.get("unlogged"):
            return list(state.meta.get("unlogged", [])), None
        tracker = Tracker(cfg, state)
        tracker.start()  # queues the back-fill
        tracker.close(status="FINISHED", timeout=timeout)
        return list(state.meta.get("unlogged", [])), tracker.error
