"""RegMix's LightGBM surrogate: one gradient-boosted tree model per target.

RegMix's settings: ``objective="regression"`` (L2), 1000 boosting rounds, learning rate 0.01, default
``num_leaves`` (31). Early stopping, when enabled, only ever looks at an *inner* split of the training
runs (``validation_fraction``); the number of rounds it finds is then refitted on all training runs, so no
test data is ever used for model selection.
"""

from __future__ import annotations

import numpy as np

from mixopt.surrogates.base import Surrogate

__all__ = ["LightGBMSurrogate"]


class LightGBMSurrogate(Surrogate):
    """Gradient-boosted trees (LightGBM), one model per target.

    Parameters: ``n_estimators`` boosting rounds (RegMix: 1000), ``learning_rate`` (0.01), ``num_leaves``
    (31), ``min_child_samples`` (capped to ``n // 10`` so tiny tables still grow trees),
    ``early_stopping_rounds`` (``None`` = off) with ``validation_fraction`` of the training runs held out
    for it, ``n_jobs`` threads (1 keeps runs deterministic), ``random_state`` seed.
    Fidelity columns (if any) are plain extra features.
    """

    smooth = False
    per_target = False  # RegMix: one regression of the objective

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.01,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        early_stopping_rounds: int | None = None,
        validation_fraction: float = 0.15,
        n_jobs: int = 1,
        fidelity_columns=None,
        target_fidelity=None,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    def _params(self, n: int, n_estimators: int) -> dict:
        seed = 0 if self.random_state is None else int(self.random_state)
        return dict(
            objective="regression",
            n_estimators=int(n_estimators),
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=max(2, min(self.min_child_samples, n // 10)),
            n_jobs=self.n_jobs,
            random_state=seed,
            deterministic=True,
            force_row_wise=True,
            verbosity=-1,
        )

    @staticmethod
    def _features(W, F):
        return W if F is None else np.hstack([W, np.log(F)])

    def _fit(self, W, F, Y):
        import lightgbm as lgb

        Xf = self._features(W, F)
        n = len(Xf)
        self.models_, self.n_estimators_ = [], []
        for j in range(Y.shape[1]):
            rounds = self.n_estimators
            if self.early_stopping_rounds and n >= 20:
                rng = np.random.default_rng(None if self.random_state is None else int(self.random_state) + j)
                idx = rng.permutation(n)
                n_val = max(2, int(round(self.validation_fraction * n)))
                va, tr = idx[:n_val], idx[n_val:]
                probe = lgb.LGBMRegressor(**self._params(len(tr), self.n_estimators))
                probe.fit(
                    Xf[tr], Y[tr, j], eval_set=[(Xf[va], Y[va, j])],
                    callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
                )
                rounds = max(1, int(probe.best_iteration_ or self.n_estimators))
            model = lgb.LGBMRegressor(**self._params(n, rounds)).fit(Xf, Y[:, j])
            self.models_.append(model)
            self.n_estimators_.append(rounds)

    def _predict(self, W, F):
        Xf = self._features(W, F)
        return np.column_stack([m.predict(Xf) for m in self.models_]), None
