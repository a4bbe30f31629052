"""What a search job decides over, built once from its config and prepared data: the domains and prior,
the feasible set, the fidelity levels with their costs, the objective and the strategy.

Every decision of the job goes through these objects: the initial design and every round's candidates
are sampled from :attr:`SearchSpace.feasible` (:attr:`SearchSpace.design_set`: without the scored floors when
they apply to the proposal only), the job's runs become one :class:`~mixopt.runs.RunTable`
(:meth:`SearchSpace.table`: per-domain final losses, each run's eval curve, fidelity columns ``tokens`` and
``n_params``, each run's wall seconds as its cost, the levels' FLOPs as their prior cost), and the
proposal is ``strategy.recommend(table, feasible)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixopt.errors import ConfigError
from mixopt.feasible import Constraints, FeasibleSet
from mixopt.objective import Objective
from mixopt.runs import RunTable
from mixopt.search.reuse import Reuse, load_reuse

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

    domains: what the search decides over, in config order (the data domains -- the leaves, for hierarchical
    domains -- or the coordinates of a mixture reuse, :mod:`mixopt.search.reuse`); leaves: the data domains
    a proxy trains on; prior: ``(k,)`` token shares (group priors where the config sets them);
    domain_tokens: ``(k,)`` training tokens per data domain; levels: ``(F, 2)`` (tokens, parameters) of each
    fidelity, cheapest first, the last the target; level_costs: ``(F,)`` FLOPs of one run at each level;
    feasible; objective; targets: the run table's target columns (the data domains' losses, then the eval
    metrics the objective names, ``cfg.objective_targets()``). cost_unit: what the run
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
    leaves: list[str] | None = None  # the data domains a proxy trains on (default: domains)
    reuse: Reuse | None = None
    explore: FeasibleSet | None = None  # where proxies may run, when wider than the proposal's set

    @property
    def design_set(self) -> FeasibleSet:
        """Where the initial design and every round's candidates are drawn from: :attr:`feasible`, or without
        the scored floors when they apply to the proposal only (``JobConfig.scored_floor_scope()``)."""
        return self.explore if self.explore is not None else self.feasible

    def __post_init__(self) -> None:
        self.leaves = list(self.leaves or self.domains)
        if self.targets is None:
            self.targets = list(self.leaves)

    @property
    def eval_targets(self) -> list[str]:
        """The eval metrics (``eval/<task>/<metric>``) among the targets: those the objective names."""
        return self.targets[len(self.leaves):]

    def leaf_weights(self, weights: dict[str, float]) -> dict[str, float]:
        """A mixture keyed by the search's coordinates -> the full mixture a proxy trains on (the same
        mixture without mixture reuse, see :mod:`mixopt.search.reuse`)."""
        return self.reuse.expand_dict(weights) if self.reuse is not None else dict(weights)

    @classmethod
    def from_data(cls, cfg, data) -> SearchSpace:
        """From the job config and its :class:`~mixopt.data.PreparedData`."""
        from mixopt.proxies import ProxyConfig

        domains = list(data.domains)
        tokens = np.array([len(data.train[d]) for d in domains], dtype=np.float64)
        hierarchy = cfg.hierarchy()  # group priors where given, token shares elsewhere
        prior = np.asarray(data.prior() if hierarchy.flat else hierarchy.prior(tokens), dtype=np.float64)
        levels, costs = [], []
        for f in cfg.proxy.fidelity_list():
            pc = ProxyConfig.preset(f.preset).with_vocab(data.vocab_size)
            levels.append([float(f.tokens), float(pc.param_counts()["total"])])
            costs.append(float(pc.flops_per_token(cfg.proxy.seq_len)) * float(f.tokens))
        floors = {"feasible": cfg.scored_floors()}  # the proposal's set; "explore": the proxies' when wider
        if floors["feasible"] and cfg.scored_floor_scope() == "proposal":
            floors["explore"] = {}
        sets = {name: Constraints.from_settings(cfg.constraints, dict(zip(domains, tokens.tolist(), strict=True)),
                                                groups=list(hierarchy.groups.values()), floors=f
                                                ).resolve(domains, prior=prior) for name, f in floors.items()}
        reuse = load_reuse(cfg)
        coords, coord_prior = domains, prior
        if reuse is not None:  # decide over the reused coordinates; the bounds follow the domains' own
            if cfg.constraints.kl_to_prior is not None or cfg.groups:
                raise ConfigError("reuse cannot be combined with constraints.kl_to_prior or domain groups yet")
            coords, coord_prior = reuse.coordinates, reuse.prior(prior)
            for name, f in sets.items():
                lo, hi = reuse.bounds(f.lo, f.hi)
                sets[name] = Constraints(min_weight=lo, max_weight=hi).resolve(coords, prior=coord_prior)
        return cls(coords, coord_prior, tokens, np.array(levels), np.array(costs), sets["feasible"],
                   Objective.parse(cfg.search.objective), cost_unit=cfg.search.cost_unit,
                   targets=cfg.objective_targets(), leaves=domains, reuse=reuse, explore=sets.get("explore"))

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
            weights = r.weights
            if self.reuse is not None:  # runs hold full mixtures; the strategy sees coordinates
                z = self.reuse.reduce([[r.weights[d] for d in self.leaves]])[0]
                weights = dict(zip(self.domains, z.tolist(), strict=True))
            recs.append({"run_id": r.run_id, "weights": weights, "status": r.status, "level": r.fidelity,
                         "final_loss": {**(r.metrics or {}), **r.final_loss},
                         "seconds": r.wall_time if r.wall_time > 0 else None,
                         "flops": r.flops if r.flops > 0 else None,
                         "tokens_seen": rec.get("tokens_seen"), "val_loss": rec.get("val_loss")})
        return RunTable.from_records(recs, domains=self.domains, targets=self.targets, fidelity=FIDELITY_COLUMNS,
                                     levels=self.levels, level_costs=self.level_costs, quantity="tokens",
                                     cost=self.cost_unit, keep_failed=True)
