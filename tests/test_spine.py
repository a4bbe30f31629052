"""One decision path: what replay scores is what the search proposes, for every strategy.

A job's runs (a synthetic mixing law, with each run's eval curve) are written as the search writes them;
the search's proposal code (``build_proposal``: the job's strategy ``.recommend`` on the job's run table)
and a replay over the same runs must recommend the same mixture. The job's feasible set is the pool's
mixtures here, because replay can only score mixtures it has rows for; the call is the same either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.feasible import Constraints
from mixopt.objective import Objective
from mixopt.replay import Pool, replay
from mixopt.search.proposal import build_proposal
from mixopt.search.space import SearchSpace
from mixopt.search.state import JobState, RunEntry
from mixopt.strategies import available_strategies

DOMAINS = ["a", "b", "c", "d"]
T = np.array([[-1.5, 0.4, 0.8, 0.3], [0.6, -1.2, 0.2, 0.4], [0.2, 0.3, -0.9, 0.4], [0.3, 0.2, 0.5, -1.0]])


def _entries(n: int, seed: int = 0) -> list[RunEntry]:
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(4), n)
    out = []
    for i, w in enumerate(W):
        final = 2.0 + np.exp(T @ w) + 0.01 * rng.standard_normal(4)  # per-domain losses
        seen = [4096, 8192, 16384]
        curve = {d: [float(final[j] + 30 * s**-0.5 - 30 * 16384**-0.5) for s in seen] for j, d in enumerate(DOMAINS)}
        out.append(RunEntry(run_id=f"r{i:04d}", weights=dict(zip(DOMAINS, w.tolist(), strict=True)), fidelity=0,
                            preset="dense-tiny", tokens=16384, seed=i, source="init", status="ok", objective=None,
                            final_loss=dict(zip(DOMAINS, final.tolist(), strict=True)), flops=1e9, wall_time=1.0,
                            record={"tokens_seen": seen, "val_loss": curve}))
    return out


@pytest.mark.parametrize("strategy", sorted(set(available_strategies()) - {"surrogate"}))
def test_replay_final_recommendation_is_the_search_proposal(strategy, demo_config, tmp_path):
    cfg = demo_config.model_copy(deep=True)
    cfg.name = f"spine-{strategy}"
    cfg.workspace = str(tmp_path)
    cfg.domains = {d: cfg.domains[list(cfg.domains)[0]] for d in DOMAINS}
    cfg.search = cfg.search.model_copy(update={"strategy": strategy, "objective": {"a": 2.0, "c": 1.0, "d": 1.0}})
    cfg = type(cfg).model_validate(cfg.model_dump())
    state = JobState.open(cfg.job_dir, config_hash="x", objective=Objective.parse(cfg.search.objective))
    for e in _entries(24):
        state.append_run(e)
    obj = Objective.parse(cfg.search.objective)
    prior = np.full(4, 0.25)
    base = SearchSpace(DOMAINS, prior, np.full(4, 1e6), np.array([[16384.0, 1e5]]), np.array([1e9]),
                       Constraints().resolve(DOMAINS, prior), obj)
    pool = Pool.from_run_table(base.table(state.runs), objective=obj)
    space = SearchSpace(**{**base.__dict__, "feasible": base.feasible.restrict(pool.X)})

    proposal, _ = build_proposal(cfg, state, space, plots=False)
    res = replay(pool, [strategy], seeds=[cfg.seed], budget=float(pool.cost.sum()), n_init=len(pool.X))
    final = res.curves.iloc[-1]
    assert final["reveal"] == len(pool.X)  # every run revealed: replay saw the job's whole table
    np.testing.assert_allclose(pool.X[int(final["recommended"])], proposal.vector(DOMAINS), atol=1e-12)
    assert final["rule"] == proposal.rule
    # the job's proposal names its strategy and rule, and the model (if any) that made it
    assert proposal.strategy == strategy and proposal.n_runs == 24
    if proposal.rule == "predicted":
        assert proposal.surrogate and proposal.predicted is not None
    else:
        assert proposal.run_id is not None and proposal.observed == pytest.approx(
            float(np.min(pool.values[:, -1])))
