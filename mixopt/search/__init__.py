"""The mixture search job: Ray loop, job state on disk, resume, budget, proposal.

>>> from mixopt.search import run_search                       # doctest: +SKIP
>>> result = run_search(load_job_config("examples/quickstart.yaml"))
>>> result.proposal.weights, result.proposal.predicted
"""

from mixopt.search.budget import Budget, Spend
from mixopt.search.lock import JobLock, JobLockedError
from mixopt.search.loop import SearchResult, run_search
from mixopt.search.proposal import build_proposal, proposal_key
from mixopt.search.space import SearchSpace, make_job_strategy
from mixopt.search.state import JobState, Launch, RunEntry, config_hash, read_runs

__all__ = [
    "Budget",
    "JobLock",
    "JobLockedError",
    "JobState",
    "Launch",
    "RunEntry",
    "SearchResult",
    "SearchSpace",
    "Spend",
    "build_proposal",
    "config_hash",
    "make_job_strategy",
    "proposal_key",
    "read_runs",
    "run_search",
]
