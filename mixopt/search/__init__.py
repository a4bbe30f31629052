"""The mixture search job: Ray loop, job state on disk, resume, budget, proposal.

>>> from mixopt.search import run_search                       # doctest: +SKIP
>>> result = run_search(load_job_config("examples/quickstart.yaml"))
>>> result.proposal.weights, result.proposal.predicted

The names below load on first use: a Ray worker unpickling a task from ``mixopt.search.workers`` imports
that module and what a proxy needs (torch, ``mixopt.proxies``, ``mixopt.data``), not the loop, the
surrogates, scikit-learn and scipy (about 1.3 s of CPU per fresh worker on the 2-core VM).
"""

from __future__ import annotations

import importlib

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

_HOME = {
    "Budget": "budget", "Spend": "budget",
    "JobLock": "lock", "JobLockedError": "lock",
    "SearchResult": "loop", "run_search": "loop",
    "build_proposal": "proposal", "proposal_key": "proposal",
    "SearchSpace": "space", "make_job_strategy": "space",
    "JobState": "state", "Launch": "state", "RunEntry": "state", "config_hash": "state", "read_runs": "state",
}


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f"mixopt.search.{_HOME[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'mixopt.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
