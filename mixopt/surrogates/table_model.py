"""From a run table to a fitted surrogate of the objective: the one place a table becomes ``(X, y)``.

:func:`surrogate_inputs` builds the arrays a surrogate fits on from a :class:`~mixopt.runs.RunTable`:

- one row per successful run: its weights, then the fidelity columns that carry information (a column
  that is constant and equal to the target fidelity is dropped), and the targets the objective uses;
- rows in a canonical order (by mixture, then fidelity), so the same runs give the same fit in any order;
- when some rows repeat a mixture at the same fidelity (a search with ``search.repeats``, a table with
  identical weight rows), each row's run-to-run noise variance (:func:`mixopt.noise.estimate_noise`), which
  surrogates that model noise (``uses_noise``: ``gp``) are fitted with (``fit(X, y, y_var=...)``);
- for surrogates that model learning curves (``uses_curves``: the mixing law's nested step law, BiMix's
  quantity term), each run **below the target** in the curve's quantity (tokens) contributes every point
  of its eval curve instead of its final losses, with the quantity column set to the tokens seen there.

:func:`fit_model` fits a registered surrogate on those arrays and returns a :class:`TableModel`, which
predicts the objective (and its std, when the surrogate has one) at the target fidelity for any mixtures.

>>> import numpy as np
>>> from mixopt.runs import RunTable
>>> W = np.random.default_rng(0).dirichlet(np.ones(3), 20)
>>> t = RunTable.from_arrays(W, np.column_stack([3 - W[:, 0], 3 - W[:, 1]]), domains=["a", "b", "c"],
...                          target_names=["a", "b"])
>>> m = fit_model("linear", t, "mean")
>>> round(float(m.predict(np.array([[0.5, 0.5, 0.0]]))[0][0]), 3)
2.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixopt.errors import MixoptError
from mixopt.noise import NoiseEstimate, estimate_noise
from mixopt.objective import Objective
from mixopt.surrogates.registry import SURROGATES, surrogate_name

__all__ = ["SurrogateInputs", "TableModel", "fit_model", "surrogate_inputs"]


@dataclass
class SurrogateInputs:
    """Arrays for ``surrogate.fit(X, Y)``.

    X: ``(r, k + f)`` weights then the informative fidelity columns; Y: ``(r, m)`` the used targets (or
    the objective, ``target_names == ["objective"]``); groups: ``(r,)`` the table row each came from;
    fidelity_columns: indices of the fidelity columns in ``X`` (``None`` without); target_fidelity:
    ``(f,)`` their values at the target; fidelity_names; curve_rows: rows that are eval-curve points;
    noise: the run-to-run noise model of ``Y`` (:class:`~mixopt.noise.NoiseEstimate`, its ``var`` ``(r, m)``
    per row), ``None`` when no row repeats another.
    """

    X: np.ndarray
    Y: np.ndarray
    groups: np.ndarray
    fidelity_columns: list[int] | None
    target_fidelity: np.ndarray | None
    fidelity_names: list[str]
    target_names: list[str]
    curve_rows: int = 0
    noise: NoiseEstimate | None = None


def surrogate_inputs(table, objective="mean", *, curves: bool = False, per_target: bool = True) -> SurrogateInputs:
    """The successful runs of ``table`` as surrogate inputs (see the module docstring).

    objective: the :class:`~mixopt.objective.Objective` (only its targets are kept); per_target: one
    column per used target (else the objective as one column). curves: expand runs below the target
    into their eval-curve points (needs ``table.curves`` and ``table.quantity``).
    """
    obj = Objective.parse(objective)
    used = obj.used_targets(table.target_names)
    ok = np.flatnonzero(table.ok)
    if len(ok) == 0:
        raise MixoptError("no successful runs to fit a model on")
    W = table.weights[ok]
    Yall = table.targets[ok]
    keep: list[int] = []
    tf_all = table.target_fidelity
    if table.fidelity is not None:
        F = table.fidelity[ok]
        keep = [j for j in range(F.shape[1]) if np.ptp(F[:, j]) > 0 or not np.isclose(F[0, j], tf_all[j])]
    q = None
    if curves and table.curves is not None and table.quantity in table.fidelity_names:
        q = table.fidelity_names.index(table.quantity)
    rows_W, rows_F, rows_Y, groups = [], [], [], []
    n_curve = 0
    for r, i in enumerate(ok):
        f = table.fidelity[i] if table.fidelity is not None else np.zeros(0)
        curve = table.curves[i] if q is not None else None
        if curve is not None and f[q] < tf_all[q] * (1 - 1e-9):
            x, Yc = curve
            for p in range(len(x)):
                fp = f.copy()
                fp[q] = x[p]
                rows_W.append(W[r])
                rows_F.append(fp)
                rows_Y.append(Yc[p])
                groups.append(i)
            n_curve += len(x)
        else:
            rows_W.append(W[r])
            rows_F.append(f)
            rows_Y.append(Yall[r])
            groups.append(i)
    Wr, Fr, Yr = np.stack(rows_W), np.stack(rows_F), np.stack(rows_Y)
    # a canonical row order: the same runs give the same fit, whatever order they finished (or were revealed) in
    order = np.lexsort(np.column_stack([Wr, Fr, Yr]).T[::-1])
    Wr, Fr, Yr, groups = Wr[order], Fr[order], Yr[order], np.asarray(groups)[order]
    if q is not None and n_curve and q not in keep:
        keep = sorted([*keep, q])
    if per_target:
        Y, names = Yr[:, used], [table.target_names[j] for j in used]
    else:
        Y, names = obj.values(Yr, table.target_names)[:, None], ["objective"]
    if keep:
        X = np.hstack([Wr, Fr[:, keep]])
        fcols = list(range(Wr.shape[1], Wr.shape[1] + len(keep)))
        tf = tf_all[keep]
    else:
        X, fcols, tf = Wr, None, None
    return SurrogateInputs(X=X, Y=Y, groups=np.asarray(groups), fidelity_columns=fcols, target_fidelity=tf,
                           fidelity_names=[table.fidelity_names[j] for j in keep], target_names=names,
                           curve_rows=n_curve, noise=estimate_noise(X, Y, k=Wr.shape[1]))


class TableModel:
    """A surrogate fitted on a run table, predicting the objective at the target fidelity.

    ``predict(W (n, k)) -> (mean (n,), std (n,) | None)``; ``predict_targets(W) -> (n, m) | None`` (per-target
    models only); ``smooth`` / ``has_std`` from the surrogate; ``describe()`` its registry name;
    ``cv_table`` / ``reason`` for ``auto``; ``n_fit`` rows fitted; ``inputs`` the arrays it was fitted on;
    ``y_var`` the noise variances it was fitted with (repeated runs and a ``uses_noise`` surrogate).
    """

    def __init__(self, surrogate, objective: Objective, all_targets: list[str], inputs: SurrogateInputs):
        self.surrogate = surrogate
        self.objective = objective
        self.inputs = inputs
        self.target_names = inputs.target_names
        self.per_target = inputs.target_names != ["objective"]
        w = objective.weights(all_targets)
        self._w = w[w != 0] if self.per_target else np.ones(1)
        self.n_fit = len(inputs.X)

    @property
    def smooth(self) -> bool:
        return bool(getattr(self.surrogate, "smooth", False))

    @property
    def has_std(self) -> bool:
        return bool(getattr(self.surrogate, "has_std", False))

    @property
    def cv_table(self):
        return getattr(self.surrogate, "cv_table_", None)

    @property
    def reason(self) -> str:
        if getattr(self.surrogate, "chosen_", None):
            return f"chosen by {getattr(self.surrogate, 'n_folds', '?')}-fold CV on the objective (Spearman)"
        return ""

    def describe(self) -> str:
        return surrogate_name(self.surrogate)

    @property
    def y_var(self) -> np.ndarray | None:
        """The per-row noise variances the surrogate was fitted with, shaped like its ``y`` (``None``: the
        surrogate learned its own noise); pass them to :func:`~mixopt.surrogates.auto.cross_validate`."""
        if self.inputs.noise is None or not getattr(self.surrogate, "uses_noise", False):
            return None
        v = self.inputs.noise.var
        return v if self.per_target else v[:, 0]

    def _raw(self, W) -> tuple[np.ndarray, np.ndarray]:
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        mean, std = self.surrogate.predict(W, return_std=True)
        return np.asarray(mean, float).reshape(len(W), -1), np.asarray(std, float).reshape(len(W), -1)

    def predict(self, W) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mean (n,), std (n,) | None)`` of the objective at the target fidelity."""
        if hasattr(self.surrogate, "predict_objective"):  # a model of the objective itself (auto's stack)
            mean, sd = self.surrogate.predict_objective(np.atleast_2d(np.asarray(W, dtype=np.float64)))
            return np.asarray(mean, float), np.asarray(sd, float)
        mean, std = self._raw(W)
        sd = np.sqrt((std**2) @ (self._w**2)) if self.has_std else None
        return mean @ self._w, sd

    def predict_targets(self, W) -> np.ndarray | None:
        """``(n, m)`` per-target predictions at the target fidelity (``None`` for a model of the objective)."""
        if not self.per_target or not getattr(self.surrogate, "per_target_valid_", True):
            return None
        return self._raw(W)[0]


def fit_model(name: str, table, objective="mean", *, seed: int = 0, per_target: bool | None = None,
              params: dict | None = None) -> TableModel:
    """Fit the registered surrogate ``name`` on the successful runs of ``table`` for ``objective``.

    per_target: fit each used target and combine (default: the surrogate's ``per_target`` attribute);
    params: extra surrogate parameters. The fidelity columns, the target fidelity, the objective's
    weights (``auto``), the table's fidelity levels and the target -> domain map (``bimix``) are passed when
    the surrogate takes them; so is the run-to-run noise of repeated runs (``uses_noise``: ``gp``).
    Raises a one-line :class:`MixoptError` with fewer than 2 successful runs.
    """
    obj = Objective.parse(objective)
    cls = SURROGATES.get(name)
    if per_target is None:
        per_target = bool(getattr(cls, "per_target", True))
    n_ok = int(table.ok.sum())
    if n_ok < 2:
        raise MixoptError(f"need at least 2 successful runs to fit a model, have {n_ok}")
    inputs = surrogate_inputs(table, obj, curves=bool(getattr(cls, "uses_curves", False)), per_target=per_target)
    kw = {"random_state": seed}
    if inputs.fidelity_columns is not None:
        kw |= {"fidelity_columns": inputs.fidelity_columns, "target_fidelity": inputs.target_fidelity}
        cols = [table.fidelity_names.index(c) for c in inputs.fidelity_names]
        kw["fidelity_levels"] = table.levels[:, cols]
        if inputs.curve_rows and table.quantity in inputs.fidelity_names:
            kw["curve_column"] = inputs.fidelity_columns[inputs.fidelity_names.index(table.quantity)]
    if per_target:
        w = obj.weights(table.target_names)
        used = obj.used_targets(table.target_names)
        kw["objective_weights"] = w[used].tolist()
        td = table.target_domains()
        if td is not None:
            kw["target_domains"] = [td[j] for j in used]
    kw = {k: v for k, v in kw.items() if SURROGATES.accepts(name, k)}
    kw |= dict(params or {})
    surrogate = SURROGATES.create(name, **kw)
    Y = inputs.Y if per_target else inputs.Y[:, 0]
    if inputs.noise is not None and getattr(surrogate, "uses_noise", False):
        surrogate.fit(inputs.X, Y, y_var=inputs.noise.var if per_target else inputs.noise.var[:, 0])
    else:
        surrogate.fit(inputs.X, Y)
    return TableModel(surrogate, obj, list(table.target_names), inputs)
