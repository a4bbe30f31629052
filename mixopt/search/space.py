"""What a search job decides over, built once from its config and prepared data: the domains and prior,
the feasible set, the fidelity levels with their costs, the objective and the strategy.

Every decision of the job goes through these objects: the initial design and every round's candidates
are sampled from :attr:`SearchSpace.feasible`, the job's runs become one :class:`~mixopt.runs.RunTable`
(:meth:`SearchSpace.table`: per-domain final losses, each run's eval curve, fidelity columns ``tokens`` and
``n_params``, each run's wall seconds as its cost, the levels' FLOPs as their prior cost), and the
proposal is ``strategy.recommend(table, feasible)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixopt.feasible import Constraints, FeasibleSet
from mixopt.objective import Objective
from mixopt.runs import RunTable

__all__ = ["FIDELITY_COLUMNS", "SearchSpace", "make_job_strategy"]

FIDELITY_COLUMNS = ["tokens", "n_params"]


def make_job_strategy(cfg, objective: Objective):
    """The job's strategy (``search.strategy``) with its seed, objective and optional overrides
    (``search.surrogate``, ``search.recommend``)."""
    from mixopt.strategies import make_strategy

    params = {"objective": objective}
    if cfg.search.surrogate is not None:
        params["surrogate"] = cfg.search.surrogate
    if cfg.search.recommend is not None:
        params["recommend"] = cfg.search.recommend
    return make_strategy(cfg.search.strategy, seed=cfg.seed, **params)


@dataclass
class SearchSpace:
    """The job's decision space (see the module docstring).

    domains: config order; prior: ``(k,)`` token shares; domain_tokens: ``(k,)`` training tokens per
    domain; levels: ``(F, 2)`` (tokens, parameters) of each fidelity, cheapest first, the last the target;
    level_costs: ``(F,)`` FLOPs of one run at each level; feasible; objective; targets: the run table's
    target columns (the domains, then the eval metrics the objective names, ``cfg.objective_targets()``).
    cost_unit: what the run
    table's ``cost`` is, hence what the acquisition prices a level by (``search.cost_unit``): ``"flops"``
    (each run's FLOPs; deterministic: the same seed gives the same mixtures on any load) or ``"seconds"``
    (observed wall time).
    """

    domains: list[str]
    prior: np.ndarray
    domain_tokens: np.ndarray
    levels: np.ndarray
    level_costs: np.ndarray
    feasible: FeasibleSet
    objective: Objective
    cost_unit: str = "flops"
    targets: list[str] | None = None

    def __post_init__(self) -> None:
        if self.targets is None:
            self.targets = list(self.domains)

    @property
    def eval_targets(self) -> list[str]:
        """The eval metrics (``eval/<task>/<metric>``) among the targets: those the objective names."""
        return self.targets[len(self.domains):]

    @classmethod
    def from_data(cls, cfg, data) -> SearchSpace:
        """From the job config and its :class:`~mixopt.data.PreparedData`."""
        from mixopt.proxies import ProxyConfig

        domains = list(data.domains)
        prior = np.asarray(data.prior(), dtype=np.float64)
        tokens = np.array([len(data.train[d]) for d in domains], dtype=np.float64)
        levels, costs = [], []
        for f in cfg.proxy.fidelity_list():
            pc = ProxyConfig.preset(f.preset).with_vocab(data.vocab_size)
            levels.append([float(f.tokens), float(pc.param_counts()["total"])])
            costs.append(float(pc.flops_per_token(cfg.proxy.seq_len)) * float(f.tokens))
        feasible = Constraints.from_settings(cfg.constraints, dict(zip(domains, tokens.tolist(), strict=True))
                                             ).resolve(domains, prior=prior)
        return cls(domains, prior, tokens, np.array(levels), np.array(costs), feasible,
                   Objective.parse(cfg.search.objective), cost_unit=cfg.search.cost_unit,
                   targets=cfg.objective_targets())

    def empty_table(self) -> RunTable:
        return RunTable.empty(self.domains, self.targets, fidelity_names=FIDELITY_COLUMNS, levels=self.levels,
                              level_costs=self.level_costs, quantity="tokens")

    def table(self, runs, *, include_confirm: bool = True) -> RunTable:
        """The job's runs (``RunEntry`` list, failed ones included with NaN losses) as a run table."""
        runs = [r for r in runs if include_confirm or r.source != "confirm"]
        if not runs:
            return self.empty_table()
        recs = []
        for r in runs:
            rec = r.record or {}
            recs.append({"run_id": r.run_id, "weights": r.weights, "status": r.status, "level": r.fidelity,
                         "final_loss": {**(r.metrics or {}), **r.final_loss}, "seconds": r.wall_time if r.wall_time > 0 else None,
                         "flops": r.flops if r.flops > 0 else None,
                         "tokens_seen": rec.get("tokens_seen"), "val_loss": rec.get("val_loss")})
        return RunTable.from_records(recs, domains=self.domains, targets=self.targets, fidelity=FIDELITY_COLUMNS,
                                     levels=self.levels, level_costs=self.level_costs, quantity="tokens",
                                     cost=self.cost_unit, keep_failed=True)
