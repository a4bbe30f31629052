"""``auto``: cross-validate the registered surrogates, stack them, and calibrate the uncertainty.

1. **Candidates.** Each candidate is a registered surrogate in a *mode*: per target (fit every target,
   combine through the objective's weights) or on the objective itself (``"lightgbm:objective"``).
   ``gp`` above ``gp_max_n`` runs is skipped; a candidate that fails is listed with its error.
2. **Cross-validation on the training runs only.** Without fidelity columns: K folds grouped by mixture
   (several rows of one mixture never straddle train and test). With fidelity columns that vary:
   **extrapolation-aware**: fit on every run below the highest fidelity, score at the highest one (the
   target, where runs exist there) -- a model that cannot extrapolate in fidelity scores badly. Tables
   larger than ``cv_max_n`` are cross-validated on a seeded subsample of mixtures (the final fit uses all).
3. **Stacking.** Non-negative weights summing to 1 over the candidates' out-of-fold objective predictions
   (least squares); an inner CV of the stack against the single best candidate decides whether the
   stack is kept (it must beat the best single candidate's Spearman by ``tie_tol``); otherwise the best
   single candidate is kept: the best Spearman of the objective (MAE breaking near-ties) among the
   candidates whose MAE is within ``mae_ratio`` (2x) of the best MAE -- a model that ranks the held-out
   fidelity well but misses its level by a large offset (trees on a fidelity feature) is not kept alone.
4. **Uncertainty.** The predictive std of the kept model is ``sqrt((s * sigma)^2 + tau^2)`` where ``sigma``
   is the members' own std (GP posterior) mixed with their spread (for a stack), and ``s``, ``tau`` are
   fitted so that 68% of the out-of-fold errors fall inside one std. ``cv_table_`` reports each
   candidate's coverage of the 68% and 95% intervals, measured on folds its calibration did not see.

``cv_table_`` has one row per candidate (objective Spearman / MAE, mean per-target Spearman / MAE,
coverage, stacking weight, seconds, or the error that made it fail) plus a ``stack`` row; ``chosen_``
names what was kept (``"mixing_law"`` or ``"stack"``), ``weights_`` the stacking weights.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm, spearmanr
from sklearn.model_selection import GroupKFold

from mixopt.errors import DataError, MixoptError
from mixopt.surrogates.base import Surrogate, split_X, validate_y
from mixopt.surrogates.registry import SURROGATES, make_surrogate

__all__ = ["AutoSurrogate", "calibrate", "cross_validate", "score_predictions"]

log = logging.getLogger(__name__)

_FIT_ERRORS = (MixoptError, ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)
_Z95 = float(norm.ppf(0.975))
_WARM_MIN = 200  # above this many mixtures a GP's CV folds start from its full-data hyper-parameters


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


def _grouped_folds(groups: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = int(groups.max()) + 1
    n_folds = int(min(n_folds, n_groups))
    if n_folds < 2:
        raise DataError("cross-validation needs at least 2 distinct mixtures")
    g = np.random.default_rng(seed).permutation(n_groups)[groups]
    return [(tr, te) for tr, te in GroupKFold(n_splits=n_folds).split(groups, groups, g)]


def cross_validate(surrogate, X, y, *, n_folds: int = 5, objective_weights=None, seed: int = 0,
                   fidelity_columns=None, y_var=None) -> dict:
    """K-fold out-of-fold predictions of a (cloned) surrogate; folds grouped by mixture (so repeats of a
    mixture are held out together). y_var: per-row noise variances, passed to each fold's fit.

    Returns ``score_predictions(...)`` plus ``"oof"`` (the ``(n, m)`` out-of-fold predictions) and
    ``"seconds"``. Runs are shuffled with ``seed`` before being assigned to folds.
    """
    from sklearn.base import clone

    W, _ = split_X(X, fidelity_columns)
    Y, _ = validate_y(y, len(W))
    X = np.asarray(X, float)
    oof = np.empty_like(Y)
    t0 = time.perf_counter()
    for tr, te in _grouped_folds(_groups(W), n_folds, seed):
        est = clone(surrogate)
        est = est.fit(X[tr], Y[tr]) if y_var is None else est.fit(X[tr], Y[tr], y_var=np.asarray(y_var)[tr])
        oof[te] = np.asarray(est.predict(X[te])).reshape(len(te), -1)
    out = score_predictions(Y, oof, objective_weights)
    out["oof"] = oof
    out["seconds"] = time.perf_counter() - t0
    return out


def calibrate(resid: np.ndarray, sigma: np.ndarray) -> tuple[float, float]:
    """``(s, tau)`` with ``sqrt((s sigma)^2 + tau^2)`` covering 68% of ``|resid|``: a pure scale ``s`` when the
    model has a std (``sigma > 0``), else a constant ``tau`` (the 68% quantile of the errors)."""
    resid, sigma = np.abs(np.asarray(resid, float)), np.asarray(sigma, float)
    if len(resid) == 0:
        return 1.0, 0.0
    if np.all(sigma > 0):
        return float(max(np.quantile(resid / sigma, 0.6827), 1e-6)), 0.0
    return 0.0, float(max(np.quantile(resid, 0.6827), 1e-12))


def _coverage(resid, sigma, groups, seed) -> tuple[float, float]:
    """Coverage of the 68% / 95% intervals with a calibration fitted on the other half of the mixtures."""
    resid, sigma = np.asarray(resid, float), np.asarray(sigma, float)
    ug = np.unique(groups)
    if len(ug) < 4:
        return float("nan"), float("nan")
    half = np.isin(groups, np.random.default_rng(seed).permutation(ug)[: len(ug) // 2])
    hit68, hit95 = [], []
    for fit_on, test in ((half, ~half), (~half, half)):
        s, tau = calibrate(resid[fit_on], sigma[fit_on])
        sd = np.sqrt((s * sigma[test]) ** 2 + tau**2)
        hit68.append(np.abs(resid[test]) <= sd)
        hit95.append(np.abs(resid[test]) <= _Z95 * sd)
    return float(np.mean(np.concatenate(hit68))), float(np.mean(np.concatenate(hit95)))


def _convex_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 minimising ``||y - P a||^2`` (``P`` (n, C))."""
    C = P.shape[1]
    if C == 1:
        return np.ones(1)
    scale = float(np.std(y)) + 1e-12
    Pn, yn = P / scale, y / scale
    res = minimize(lambda a: float(np.sum((yn - Pn @ a) ** 2)), np.full(C, 1.0 / C),
                   jac=lambda a: -2.0 * Pn.T @ (yn - Pn @ a), method="SLSQP", bounds=[(0.0, 1.0)] * C,
                   constraints=[{"type": "eq", "fun": lambda a: np.sum(a) - 1.0, "jac": lambda a: np.ones(C)}],
                   options={"maxiter": 200, "ftol": 1e-12})
    a = np.clip(res.x, 0.0, None)
    a[a < 0.01] = 0.0
    return a / a.sum() if a.sum() > 0 else np.eye(C)[int(np.argmin(((P - y[:, None]) ** 2).sum(0)))]


class AutoSurrogate(Surrogate):
    """Cross-validated stack (or single best) of the registered surrogates, with a calibrated std.

    candidates: specs ``"name"`` or ``"name:objective"`` / ``"name:per_target"`` (default: linear,
    lightgbm on the objective, the mixing law, bimix and the GP; LightGBM per target too when there are at
    most 16 targets). Above 200 mixtures a GP candidate is fitted once on every run and its hyper-parameters
    warm-start every fold (10 L-BFGS steps): a few times cheaper, a little optimistic (``gp_warm_start``).
    n_repeats: repeats of the K-fold split with other shuffles (default 3 up to 100 mixtures, where one
    split's choice is noisy, else 1). curve_column: the column of ``X`` holding tokens seen when ``X``
    includes eval-curve points (``mixopt.surrogates.surrogate_inputs(curves=True)``): candidates that read
    curves (``uses_curves``) get them, the others and every score get each curve's final row. candidate_params: ``{name: {param: value}}``. objective_weights: ``(m,)`` weights of
    the objective everything is scored on (default: the mean). target_domains: for ``bimix``.
    n_folds: K of the grouped K-fold. stack: allow the stack. tie_tol: Spearman margin a stack must win
    by. gp_max_n / cv_max_n: size limits (see the module docstring). n_jobs: CV fits in parallel
    (threads). progress: optional ``callable(done, total, label)``.
    """

    has_std = True
    uses_curves = True  # it passes eval-curve rows on to the candidates that read them (curve_column)

    def __init__(self, candidates=None, n_folds: int = 5, objective_weights=None, candidate_params=None,
                 target_domains=None, gp_max_n: int = 1000, stack: bool = True, tie_tol: float = 0.002,
                 cv_max_n: int = 4000, n_jobs: int = 2, n_repeats: int | None = None, gp_warm_start: bool = True,
                 curve_column: int | None = None, mae_ratio: float = 2.0, fidelity_columns=None,
                 target_fidelity=None, random_state=None, progress=None):
        self.candidates = candidates
        self.n_folds = n_folds
        self.objective_weights = objective_weights
        self.candidate_params = candidate_params
        self.target_domains = target_domains
        self.gp_max_n = gp_max_n
        self.stack = stack
        self.tie_tol = tie_tol
        self.cv_max_n = cv_max_n
        self.n_jobs = n_jobs
        self.n_repeats = n_repeats
        self.gp_warm_start = gp_warm_start
        self.curve_column = curve_column
        self.mae_ratio = mae_ratio
        self.fidelity_columns = fidelity_columns
        self.target_fidelity = target_fidelity
        self.random_state = random_state
        self.progress = progress

    @property
    def smooth(self) -> bool:  # type: ignore[override]
        members = getattr(self, "members_", None)
        return bool(members) and all(getattr(m, "smooth", False) for m, _ in members.values())

    # ------------------------------------------------------------------ candidates
    def _specs(self, m: int) -> list[str]:
        if self.candidates is not None:
            return [str(c) for c in self.candidates if str(c).split(":")[0] != "auto"]
        specs = ["linear", "lightgbm:objective", "mixing_law", "bimix", "gp"]
        if 1 < m <= 16:
            specs.insert(2, "lightgbm:per_target")
        return specs

    def _mode(self, spec: str, m: int) -> tuple[str, bool]:
        name, _, mode = spec.partition(":")
        SURROGATES.check(name)
        if mode not in ("", "objective", "per_target"):
            raise MixoptError(f"auto: candidate {spec!r}: mode must be 'objective' or 'per_target'")
        per_target = bool(getattr(SURROGATES.get(name), "per_target", True)) if not mode else mode == "per_target"
        return name, per_target and m > 1

    def _make(self, name: str):
        params = dict((self.candidate_params or {}).get(name, {}))
        params.setdefault("random_state", self.random_state)
        if self.fidelity_columns is not None:
            params.setdefault("fidelity_columns", self.fidelity_columns)
            params.setdefault("target_fidelity", self.target_fidelity)
        if name == "bimix" and self.target_domains is not None:
            params.setdefault("target_domains", self.target_domains)
        return make_surrogate(name, **params)

    # ------------------------------------------------------------------ CV design
    def _splits(self, W, F, groups, seed) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
        if F is not None and np.ptp(np.log(F), axis=0).max() > 0:
            size = np.log(F).sum(axis=1)
            top = np.isclose(size, size.max(), rtol=0, atol=1e-9)
            if top.sum() >= 4 and (~top).sum() >= 3 and len(np.unique(groups[top])) >= 4:
                return [(np.flatnonzero(~top), np.flatnonzero(top))], \
                    "extrapolation: fitted below the highest fidelity, scored at it"
        n_groups = int(groups.max()) + 1
        repeats = self.n_repeats if self.n_repeats is not None else (3 if n_groups <= 100 else 1)
        folds = min(self.n_folds, n_groups)
        splits = [sp for r in range(repeats) for sp in _grouped_folds(groups, folds, seed + 1000 * r)]
        return splits, f"grouped {folds}-fold" + (f" x {repeats}" if repeats > 1 else "")

    def _curve_rows(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(final (n,) bool, curve id (n,))``: with ``curve_column``, rows sharing the weights and the other
        fidelity columns form one curve whose largest ``curve_column`` value is its final row."""
        n = len(X)
        if self.curve_column is None:
            return np.ones(n, dtype=bool), np.arange(n)
        c = int(self.curve_column) % X.shape[1]
        key = np.round(np.delete(X, c, axis=1), 6)
        _, cid = np.unique(key, axis=0, return_inverse=True)
        cid = cid.ravel()
        top = np.full(cid.max() + 1, -np.inf)
        np.maximum.at(top, cid, X[:, c])
        return X[:, c] >= top[cid], cid

    def _fit_member(self, name, per_target, X, Y, w, extra=None):
        est = self._make(name)
        if extra:
            est.set_params(**extra)
        if per_target:
            return est.fit(X, Y)
        return est.fit(X, Y @ w)

    @staticmethod
    def _member_predict(est, per_target, X, m, w_sum):
        """``(per-target (n, m), objective std (n,) | None)`` of a fitted member (objective members are
        spread over the targets so that the objective's combination is exact)."""
        mean, std = est.predict(X, return_std=True)
        mean = np.asarray(mean, float).reshape(len(X), -1)
        has = bool(getattr(est, "has_std", False))
        if per_target:
            return mean, (np.asarray(std, float).reshape(len(X), -1) if has else None)
        P = np.repeat(mean / w_sum, m, axis=1)
        return P, (np.asarray(std, float).reshape(len(X), 1) if has else None)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        X = np.asarray(X, float)
        W, F = split_X(X, self.fidelity_columns)
        Y, was_1d = validate_y(y, len(W))
        n, m = Y.shape
        seed = 0 if self.random_state is None else int(self.random_state)
        w = np.full(m, 1.0 / m) if self.objective_weights is None else np.asarray(self.objective_weights, float)
        if w.shape != (m,):
            raise DataError(f"auto: objective_weights has {w.size} values for {m} targets")
        w_sum = float(w.sum())
        y_obj = Y @ w
        # rows that are eval-curve points (curve_column) serve only the candidates that read curves; the
        # others, and every score, use the final row of each curve
        final, curve_id = self._curve_rows(X)
        fi = np.flatnonzero(final)
        groups = _groups(W)
        gf = _groups(W[fi])
        # a seeded subsample of mixtures for CV on very large tables (the final fit uses every run)
        cv_f = np.arange(len(fi))
        if len(fi) > self.cv_max_n:
            keep = np.random.default_rng(seed).permutation(gf.max() + 1)
            chosen, count = [], 0
            sizes = np.bincount(gf)
            for g in keep:
                chosen.append(g)
                count += sizes[g]
                if count >= self.cv_max_n:
                    break
            cv_f = np.flatnonzero(np.isin(gf, chosen))
        splits_f, self.cv_kind_ = self._splits(W[fi][cv_f], None if F is None else F[fi][cv_f], _groups(W[fi][cv_f]),
                                               seed)
        splits = []  # (train rows for curve readers, train rows for the others, test rows): indices into X
        for tr, te in splits_f:
            tr_rows, te_rows = fi[cv_f[tr]], fi[cv_f[te]]
            splits.append((np.flatnonzero(np.isin(curve_id, curve_id[tr_rows])), tr_rows, te_rows))
        scored = np.concatenate([te for _, _, te in splits])  # a row appears once per repeat of the folds
        offsets = np.cumsum([0] + [len(te) for _, _, te in splits])

        rows, specs_ok, tasks = {}, [], []
        full: dict[str, object] = {}  # GP candidates: fitted once on every run; its hyper-parameters warm-start
        #                               every fold (a few L-BFGS steps instead of a full fit per fold)
        for spec in self._specs(m):
            name, per_target = self._mode(spec, m)
            if not per_target and m > 1 and abs(w_sum) < 1e-12:
                rows[spec] = {"surrogate": spec, "skipped": "the objective's weights sum to 0"}
                continue
            if name == "gp" and len(np.unique(gf)) > self.gp_max_n:
                rows[spec] = {"surrogate": spec, "skipped": f"n={n} > gp_max_n={self.gp_max_n}"}
                continue
            if name == "gp" and self.gp_warm_start and len(np.unique(gf)) > _WARM_MIN:
                t0 = time.perf_counter()
                try:
                    full[spec] = self._fit_member(name, per_target, X[fi], Y[fi], w)
                except _FIT_ERRORS as e:
                    rows[spec] = {"surrogate": spec, "skipped": str(e).splitlines()[0][:200]}
                    continue
                full_secs = time.perf_counter() - t0
            specs_ok.append((spec, name, per_target))
            tasks += [(spec, name, per_target, k) for k in range(len(splits))]
        oof = {spec: np.full((len(scored), m), np.nan) for spec, _, _ in specs_ok}
        oof_sd = {spec: np.full(len(scored), np.nan) for spec, _, _ in specs_ok}
        secs = {spec: (full_secs if spec in full else 0.0) for spec, _, _ in specs_ok}
        errors: dict[str, str] = {}
        done = [0]

        def run(task):
            spec, name, per_target, k = task
            if spec in errors:
                return
            tr_curves, tr, te = splits[k]
            if getattr(SURROGATES.get(name), "uses_curves", False):
                tr = tr_curves
            t0 = time.perf_counter()
            try:
                warm = {"init_state": full[spec].hyper_state(), "max_iter": 10} if spec in full else None
                est = self._fit_member(name, per_target, X[tr], Y[tr], w, warm)
                P, S = self._member_predict(est, per_target, X[te], m, w_sum)
            except _FIT_ERRORS as e:
                errors.setdefault(spec, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
                return
            finally:
                secs[spec] += time.perf_counter() - t0
                done[0] += 1
                if self.progress is not None:
                    self.progress(done[0], len(tasks), f"{spec} fold {k + 1}/{len(splits)}")
            at = slice(offsets[k], offsets[k + 1])
            oof[spec][at] = P
            if S is not None:
                oof_sd[spec][at] = np.sqrt((S**2) @ (w**2)) if per_target else S[:, 0]

        workers = max(1, int(self.n_jobs or 1))
        if workers > 1 and len(tasks) > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, tasks))
        else:
            for t in tasks:
                run(t)

        ok = []
        for spec, _, _ in specs_ok:
            if spec in errors or not np.isfinite(oof[spec]).all():
                rows[spec] = {"surrogate": spec, "skipped": errors.get(spec, "non-finite predictions")}
                continue
            ok.append(spec)
            sc = score_predictions(Y[scored], oof[spec], w)
            rows[spec] = {"surrogate": spec, **{k: round(float(sc[k]), 5) for k in
                                                ("spearman", "mae", "mean_target_spearman", "mean_target_mae")},
                          "seconds": round(secs[spec], 3)}
            sd = oof_sd[spec]
            sd = np.where(np.isfinite(sd), sd, 0.0)
            c68, c95 = _coverage(y_obj[scored] - oof[spec] @ w, sd, groups[scored], seed)
            rows[spec] |= {"coverage68": round(c68, 3), "coverage95": round(c95, 3)}
        if not ok:
            raise DataError("auto: every candidate surrogate failed; see cv_table_: "
                            + "; ".join(f"{r['surrogate']}: {r.get('skipped')}" for r in rows.values()))

        # the single best candidate among those whose error is within mae_ratio of the best error (a model
        # that ranks well but cannot extrapolate in fidelity is off by a large offset), and the stack
        best_mae = min(rows[s]["mae"] for s in ok)
        eligible = [s for s in ok if rows[s]["mae"] <= self.mae_ratio * best_mae + 1e-12]
        for s_ in ok:
            if s_ not in eligible:
                rows[s_]["note"] = f"error {rows[s_]['mae'] / max(best_mae, 1e-300):.1f}x the best: not chosen alone"
        best_sp = max(rows[s]["spearman"] for s in eligible)
        near = [s for s in eligible if rows[s]["spearman"] >= best_sp - self.tie_tol]
        single = min(near, key=lambda s: rows[s]["mae"])
        P_obj = np.column_stack([oof[s] @ w for s in ok])
        weights = {s: float(s == single) for s in ok}
        stack_row = {"surrogate": "stack"}
        if self.stack and len(ok) > 1:
            a = _convex_weights(P_obj, y_obj[scored])
            stacked = self._inner_cv_stack(P_obj, y_obj[scored], groups[scored], seed)
            st_sp, st_mae = _spearman(y_obj[scored], stacked), float(np.mean(np.abs(y_obj[scored] - stacked)))
            stack_row |= {"spearman": round(st_sp, 5), "mae": round(st_mae, 5),
                          "weights": {s: round(float(x), 3) for s, x in zip(ok, a, strict=True) if x > 0}}
            if st_sp > rows[single]["spearman"] + self.tie_tol and int((a > 0).sum()) > 1:
                weights = {s: float(x) for s, x in zip(ok, a, strict=True)}
        chosen = "stack" if sum(x > 0 for x in weights.values()) > 1 else single
        self.weights_ = {s: x for s, x in weights.items() if x > 0}
        self.chosen_ = chosen

        # calibration of the kept model's std on the out-of-fold errors
        mean_oof = sum(self.weights_[s] * oof[s] @ w for s in self.weights_)
        sigma_raw = self._mix_sigma({s: oof[s] @ w for s in self.weights_},
                                    {s: oof_sd[s] for s in self.weights_}, mean_oof)
        resid = y_obj[scored] - mean_oof
        self.calibration_ = calibrate(resid, sigma_raw)
        c68, c95 = _coverage(resid, sigma_raw, groups[scored], seed)
        self.cv_spearman_ = _spearman(y_obj[scored], mean_oof)
        self.cv_mae_ = float(np.mean(np.abs(resid)))
        self.coverage68_, self.coverage95_ = c68, c95
        if chosen == "stack":
            stack_row |= {"coverage68": round(c68, 3), "coverage95": round(c95, 3)}
        for spec, row in rows.items():
            row["chosen"] = spec in self.weights_
            if spec in self.weights_:
                row["weight"] = round(self.weights_[spec], 3)
        self.cv_table_ = list(rows.values()) + ([stack_row] if len(stack_row) > 1 else [])
        for row in self.cv_table_:
            row.setdefault("chosen", False)
        if chosen == "stack":
            self.cv_table_[-1]["chosen"] = True

        # refit the kept members on every run
        specs = {spec: per_target for spec, _, per_target in specs_ok}
        self.members_ = {}
        for spec in self.weights_:
            name = spec.split(":")[0]
            rows_ = np.arange(n) if getattr(SURROGATES.get(name), "uses_curves", False) else fi
            est = full.get(spec) or self._fit_member(name, specs[spec], X[rows_], Y[rows_], w)
            self.members_[spec] = (est, specs[spec])
        self.objective_weights_ = w
        self.n_features_in_ = X.shape[1]
        self.n_domains_ = W.shape[1]
        self.n_targets_ = m
        self.y_1d_ = was_1d
        ests = [e for e, _ in self.members_.values()]
        self.target_fidelity_ = getattr(ests[0], "target_fidelity_", None)
        self.per_target_valid_ = all(pt or m == 1 for _, pt in self.members_.values())
        return self

    def _inner_cv_stack(self, P, y, groups, seed) -> np.ndarray:
        """Out-of-fold predictions of the stack itself (weights fitted on the other folds)."""
        out = np.empty(len(y))
        for tr, te in _grouped_folds(groups, min(5, len(np.unique(groups))), seed + 1):
            out[te] = P[te] @ _convex_weights(P[tr], y[tr])
        return out

    def _mix_sigma(self, means: dict, sds: dict, mean) -> np.ndarray:
        """Members' own variance and their spread around the stack's mean, mixed by the stacking weights."""
        var = np.zeros_like(mean)
        for s, a in self.weights_.items():
            sd = np.where(np.isfinite(sds[s]), sds[s], 0.0)
            var += a * (sd**2 + (means[s] - mean) ** 2)
        return np.sqrt(var)

    # ------------------------------------------------------------------ predict
    def predict_objective(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(mean (n,), std (n,))`` of the objective: the stack's mean and its calibrated std."""
        if not hasattr(self, "members_"):
            raise DataError("AutoSurrogate is not fitted yet: call fit(X, y) first")
        X = np.asarray(X, float)
        X = X[None, :] if X.ndim == 1 else X
        w, m = self.objective_weights_, self.n_targets_
        means, sds = {}, {}
        for spec, (est, per_target) in self.members_.items():
            P, S = self._member_predict(est, per_target, X, m, float(w.sum()) or 1.0)
            means[spec] = P @ w
            sds[spec] = (np.sqrt((S**2) @ (w**2)) if per_target else S[:, 0]) if S is not None else np.zeros(len(X))
        mean = sum(self.weights_[s] * means[s] for s in self.weights_)
        s, tau = self.calibration_
        sigma = self._mix_sigma(means, sds, mean)
        return mean, np.sqrt((s * sigma) ** 2 + tau**2)

    def predict(self, X, return_std: bool = False):
        """Per-target predictions (``(n,)`` or ``(n, m)`` like the fitted ``y``); the std of every target
        column is the objective's calibrated std spread so that the objective's combination is exact."""
        if not hasattr(self, "members_"):
            raise DataError("AutoSurrogate is not fitted yet: call fit(X, y) first")
        X = np.asarray(X, float)
        X = X[None, :] if X.ndim == 1 else X
        w, m = self.objective_weights_, self.n_targets_
        mean = sum(self.weights_[spec] * self._member_predict(est, pt, X, m, float(w.sum()) or 1.0)[0]
                   for spec, (est, pt) in self.members_.items())
        if not return_std:
            return mean[:, 0] if self.y_1d_ else mean
        _, sd = self.predict_objective(X)
        std = np.repeat((sd / max(np.sqrt(np.sum(w**2)), 1e-300))[:, None], m, axis=1)
        return (mean[:, 0], std[:, 0]) if self.y_1d_ else (mean, std)
