"""Replay: judge search strategies offline on a table of finished runs (pool-based simulation).

The table's mixtures are the candidate pool. A strategy (the same object the live search uses) picks which
(mixture, fidelity) to reveal next; an :class:`Oracle` holds the hidden table and hands out a row's values
only when it is revealed, and the strategy only ever sees the :class:`~mixopt.strategies.History` the
oracle builds from revealed rows. After every reveal the replay records the cumulative cost, the mixture
the strategy recommends now, that mixture's true objective at the target fidelity, the simple regret against
the pool's best and its true rank.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> W = rng.dirichlet(np.ones(3), size=30)
>>> pool = Pool.from_arrays(W, ((W - [0.6, 0.3, 0.1]) ** 2).sum(1))
>>> res = replay(pool, ["random"], seeds=2, budget=10, n_init=4)
>>> res.curves.groupby("seed").size().tolist()
[10, 10]
"""

from mixopt.replay.pool import Pool, load_pool
from mixopt.replay.simulate import Oracle, ReplayResult, replay, summarize

__all__ = ["Oracle", "Pool", "ReplayResult", "load_pool", "replay", "summarize"]
