"""What a search returns: :class:`SearchResult` (the proposal, every run, the spend, where the time went)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mixopt.proposal import Proposal
from mixopt.search.report import plot_paths
from mixopt.search.state import RunEntry, RunListing, best_run
from mixopt.tracking import tracking_uri

__all__ = ["SearchResult", "finished_result"]


@dataclass
class SearchResult(RunListing):
    """What a search produced. ``proposal`` is ``strategy.recommend`` on the job's runs (also written to
    ``<job_dir>/proposal.json``). ``phases``: this session's wall-clock phases, ``{name: {"start_s",
    "end_s", "s"}}`` in seconds from the call (see :class:`~mixopt.search.phases.PhaseClock`; background
    phases overlap the others)."""

    job_dir: Path
    proposal: Proposal | None
    runs: list[RunEntry]
    spent: dict
    budget_fraction: float
    tracking_uri: str
    experiment: str
    parent_run_id: str | None = None
    unlogged: list[str] = field(default_factory=list)
    tracking_error: str | None = None
    plots: list[Path] = field(default_factory=list)
    resumed: bool = False
    new_runs: int = 0
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def best(self) -> RunEntry | None:
        return best_run(self.runs)


def finished_result(cfg, s, proposal: Proposal, spent, phases: dict) -> SearchResult:
    """The result of a job with nothing left to do (``s``: the loop's session; ``spent``: its ``Spend``).
    MLflow is only touched to back-fill unlogged runs."""
    from mixopt.tracking import Tracker

    tracker = None
    if cfg.tracking.enabled and s.state.meta.get("unlogged"):
        tracker = Tracker(cfg, s.state)
        tracker.start()
        tracker.close(status="FINISHED")
    s.display.message(f"search {cfg.name}: nothing left to do (budget {100 * s.budget.fraction(spent, s.elapsed()):.0f}% "
                      "used, proposal current); raise the budget in the job file to continue")
    return SearchResult(
        job_dir=Path(cfg.job_dir).resolve(), proposal=proposal, runs=list(s.state.runs), spent=spent.to_dict(),
        budget_fraction=s.budget.fraction(spent, s.elapsed()), tracking_uri=tracking_uri(cfg),
        experiment=cfg.experiment_name(), parent_run_id=(s.state.meta.get("mlflow") or {}).get("parent_run_id"),
        unlogged=list(s.state.meta.get("unlogged", [])), tracking_error=tracker.error if tracker else None,
        plots=plot_paths(cfg.job_dir), resumed=True, new_runs=0, phases=phases,
    )
