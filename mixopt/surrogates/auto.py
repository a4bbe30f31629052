"""``auto``: pick a surrogate by K-fold cross-validation on the training runs only.

Every candidate is cross-validated (``n_folds`` folds, grouped by mixture so that several fidelities of
one run never straddle train and test); the out-of-fold predictions are scored on the *objective* (the
weighted sum of targets; default the mean) by Spearman rank correlation — what the proposer needs is the
ranking of mixtures — with MAE breaking near-ties (within ``tie_tol``). The winner is refitted on all runs.
``cv_table_`` holds one row per candidate (objective Spearman / MAE, mean per-target Spearman / MAE,
fit seconds, or the error that made it fail), ``chosen_`` the winner's name.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.model_selection import GroupKFold

from mixopt.errors import DataError, MixoptError
from mixopt.surrogates.base import Surrogate, split_X, validate_y
from mixopt.surrogates.registry import make_surrogate

__all__ = ["AutoSurrogate", "cross_validate", "score_predictions"]

_DEFAULT_CANDIDATES = ("linear", "lightgbm", "mixing_law", "bimix", "gp")


def _spearman(a, b) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def score_predictions(Y, P, objective_weights=None) -> dict:
    """Spearman / MAE of predictions ``P`` against ``Y`` (both ``(n, m)``), per target and on the objective."""
    Y, P = np.atleast_2d(np.asarray(Y, float).T).T, np.atleast_2d(np.asarray(P, float).T).T
    w = np.full(Y.shape[1], 1.0 / Y.shape[1]) if objective_weights is None else np.asarray(objective_weights)
    per_sp = [_spearman(Y[:, j], P[:, j]) for j in range(Y.shape[1])]
    per_mae = [float(np.mean(np.abs(Y[:, j] - P[:, j]))) for j in range(Y.shape[1])]
    return {
        "spearman": _spearman(Y @ w, P @ w),
        "mae": float(np.mean(np.abs(Y @ w - P @ w))),
        "mean_target_spearman": float(np.mean(per_sp)),
        "mean_target_mae": float(np.mean(per_mae)),
        "target_spearman": per_sp,
        "target_mae": per_mae,
    }


def _groups(W: np.ndarray) -> np.ndarray:
    _, inv = np.unique(np.round(W, 6), axis=0, return_inverse=True)
    return inv.ravel()


def cross_validate(surrogate, X, y, *, n_folds: int = 5, objective_weights=None, seed: int = 0,
                   fidelity_columns=None) -> dict:
    """K-fold out-of-fold predictions of a (cloned) surrogate; folds grouped by mixture.

    Returns ``score_predictions(...)`` plus ``"oof"`` (the ``(n, m)`` out-of-fold predictions) and
    ``"seconds"``. Runs are shuffled with ``seed`` before being assigned to folds.
    """
    from sklearn.base import clone

    W, _ = split_X(X, fidelity_columns)
    Y, _ = validate_y(y, len(W))
    groups = _groups(W)
    n_groups = groups.max() + 1
    n_folds = int(min(n_folds, n_groups))
    if n_folds < 2:
        raise DataError("cross-validation needs at least 2 distinct mixtures")
    perm = np.random.default_rng(seed).permutation(n_groups)
    groups = perm[groups]
    X = np.asarray(X, float)
    oof = np.empty_like(Y)
    t0 = time.perf_counter()
    for tr, te in GroupKFold(n_splits=n_folds).split(X, Y, groups):
        est = clone(surrogate).fit(X[tr], Y[tr])
        oof[te] = np.asarray(est.predict(X[te])).reshape(len(te), -1)
    out = score_predictions(Y, oof, objective_weights)
    out["oof"] = oof
    out["seconds"] = time.perf_counter() - t0
    return out


class AutoSurrogate(Surrogate):
    """Choose among registered surrogates by cross-validation on the training runs.

    candidates: names to try (default linear, lightgbm, mixing_law, bimix, gp); ``gp`` is skipped when
    there are more than ``gp_max_n`` runs. candidate_params: ``{name: {param: value}}`` overrides.
    target_domains: forwarded to ``bimix`` (which is skipped with a note when it cannot map targets).
    objective_weights: ``(m,)`` weights of the objective the ranking is scored on (default: mean).
    """

    def __init__(self, candidates=None, n_folds: int = 5, objective_weights=None, candidate_params=None,
                 target_domains=None, gp_max_n: int = 300, tie_tol: float = 0.002, fidelity_columns=None,
                 target_fidelity=None, random_state=None):
        self.candidates = candidates
        self.n_folds = n_folds
        self.objective_weights = objective_weights
        self.candidate_params = candidate_params
        self.target_domains = target_domains
        self.gp_max_n = gp_max_n
        self.tie_tol = tie_tol
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state

    @property
    def smooth(self) -> bool:  # type: ignore[override]
        return bool(getattr(getattr(self, "estimator_", None), "smooth", False))

    @property
    def has_std(self) -> bool:  # type: ignore[override]
        return bool(getattr(getattr(self, "estimator_", None), "has_std", False))

    def _make(self, name: str):
        params = dict((self.candidate_params or {}).get(name, {}))
        params.setdefault("random_state", self.random_state)
        if self.fidelity_columns is not None:
            params.setdefault("fidelity_columns", self.fidelity_columns)
            params.setdefault("target_fidelity", self.target_fidelity)
        if name == "bimix" and self.target_domains is not None:
            params.setdefault("target_domains", self.target_domains)
        return make_surrogate(name, **params)

    def fit(self, X, y):
        X = np.asarray(X, float)
        W, _ = split_X(X, self.fidelity_columns)
        Y, was_1d = validate_y(y, len(W))
        seed = 0 if self.random_state is None else int(self.random_state)
        names = list(self.candidates or _DEFAULT_CANDIDATES)
        rows, scores = [], {}
        for name in names:
            if name == "auto":
                continue
            row = {"surrogate": name}
            if name == "gp" and len(W) > self.gp_max_n:
                row["skipped"] = f"n={len(W)} > gp_max_n={self.gp_max_n}"
                rows.append(row)
                continue
            try:
                res = cross_validate(self._make(name), X, Y if not was_1d else Y[:, 0], n_folds=self.n_folds,
                                     objective_weights=self.objective_weights, seed=seed,
                                     fidelity_columns=self.fidelity_columns)
            except (MixoptError, ValueError, RuntimeError, np.linalg.LinAlgError) as e:
                row["skipped"] = str(e).splitlines()[0][:200]
                rows.append(row)
                continue
            for key in ("spearman", "mae", "mean_target_spearman", "mean_target_mae", "seconds"):
                row[key] = round(float(res[key]), 5)
            rows.append(row)
            scores[name] = (res["spearman"], res["mae"])
        if not scores:
            raise DataError("auto: every candidate surrogate failed; see cv_table_: "
                            + "; ".join(f"{r['surrogate']}: {r.get('skipped')}" for r in rows))
        best_sp = max(s for s, _ in scores.values())
        near = [n for n, (s, _) in scores.items() if s >= best_sp - self.tie_tol]
        self.chosen_ = min(near, key=lambda n: scores[n][1])
        for row in rows:
            row["chosen"] = row["surrogate"] == self.chosen_
        self.cv_table_ = rows
        self.estimator_ = self._make(self.chosen_).fit(X, y)
        self.n_features_in_ = X.shape[1]
        self.n_domains_ = W.shape[1]
        self.n_targets_ = Y.shape[1]
        self.y_1d_ = was_1d
        self.target_fidelity_ = getattr(self.estimator_, "target_fidelity_", None)
        return self

    def predict(self, X, return_std: bool = False):
        """Delegate to the chosen surrogate (fitted on all runs)."""
        if not hasattr(self, "estimator_"):
            raise DataError("AutoSurrogate is not fitted yet: call fit(X, y) first")
        return self.estimator_.predict(X, return_std=return_std)
