"""The job's figures (matplotlib, Agg backend, PNG), written under ``<job_dir>/plots/``:

* ``cv_predicted_vs_actual.png`` — out-of-fold surrogate predictions of the objective vs observed;
* ``proposal_vs_prior.png`` — proposal, prior, uniform and best-run weights per domain;
* ``best_vs_budget.png`` — every target-fidelity run's objective and the best so far vs cumulative proxy
  FLOPs (in finishing order);
* ``loss_vs_fidelity.png`` — each run's objective vs its training FLOPs, one colour per fidelity; with a
  single fidelity ``runs_by_source.png`` instead: each run's objective in launch order, one colour per
  source (initial design, strategy's picks, verification).
* ``noise_by_mixture.png`` — only with repeated runs (``search.repeats``): every repeated mixture's
  objective at the target fidelity, mean ± std and each repeat, sorted by mean (run-to-run noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixopt.noise import mixture_spread

__all__ = ["cv_predictions", "write_plots"]


def cv_predictions(model, table, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Out-of-fold predictions of the objective by the model's surrogate (for ``auto``: the chosen one) on
    the table's final results, folds grouped by mixture: ``(observed (n,), predicted (n,))``; None with
    fewer than 4 runs or no model."""
    from mixopt.surrogates import surrogate_inputs
    from mixopt.surrogates.auto import cross_validate

    if model is None or int(table.ok.sum()) < 4:
        return None
    inputs = surrogate_inputs(table, model.objective, per_target=model.per_target)
    base = getattr(model.surrogate, "estimator_", model.surrogate)
    y = inputs.Y if model.per_target else inputs.Y[:, 0]
    y_var = None
    if inputs.noise is not None and getattr(base, "uses_noise", False):  # fitted as the model was
        y_var = inputs.noise.var if model.per_target else inputs.noise.var[:, 0]
    res = cross_validate(base, inputs.X, y, n_folds=min(5, len(inputs.X)), seed=seed,
                         fidelity_columns=inputs.fidelity_columns, y_var=y_var)
    oof = np.asarray(res["oof"], dtype=np.float64).reshape(len(inputs.X), -1)
    w = model._w
    return inputs.Y @ w, oof @ w


def write_plots(out_dir: Path, cfg, runs, space, proposal, model, table) -> list[Path]:
    """Draw the figures (the fifth only with repeats); returns the paths written.

    runs: the job's ``RunEntry`` list; space: its ``SearchSpace``; proposal: the ``Proposal``; model: the
    strategy's fitted model (``None`` without one); table: the run table the proposal was made from.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    domains = space.leaves  # the proposal's weights are over the data domains

    def save(fig, name: str) -> None:
        p = out_dir / name
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    # 1. CV predicted vs actual
    cv = cv_predictions(model, table, cfg.seed)
    if cv is not None:
        y, yp = cv
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        ax.scatter(y, yp, s=18)
        lo, hi = float(min(y.min(), yp.min())), float(max(y.max(), yp.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        rmse = float(np.sqrt(np.mean((y - yp) ** 2)))
        ax.set(xlabel="observed objective", ylabel="out-of-fold prediction",
               title=f"{model.describe()} CV (RMSE {rmse:.3g})")
        save(fig, "cv_predicted_vs_actual.png")

    # 2. proposal vs prior weights
    series = {"proposal": proposal.weights}
    series |= {(k if k != "best_run" else f"best run {b.get('run_id', '')}"): b["weights"]
               for k, b in proposal.baselines.items()}
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(domains) + 2), 3.6))
    width = 0.8 / len(series)
    xs = np.arange(len(domains))
    for i, (label, w) in enumerate(series.items()):
        ax.bar(xs + i * width - 0.4 + width / 2, [w[d] for d in domains], width, label=label)
    ax.set_xticks(xs, domains, rotation=30, ha="right")
    ax.set(ylabel="weight", title="proposed mixture")
    ax.legend(fontsize=7)
    save(fig, "proposal_vs_prior.png")

    ok = [r for r in runs if r.ok and r.objective is not None]
    target = len(space.levels) - 1
    # 3. best objective vs budget spent
    counted = sorted([r for r in runs if r.source != "confirm"], key=lambda r: r.finished_at)
    spent, best, xs_b, ys_b = 0.0, np.inf, [], []
    for r in counted:
        spent += r.flops
        if r.ok and r.objective is not None and r.fidelity == target:
            best = min(best, r.objective)
        if np.isfinite(best):
            xs_b.append(spent)
            ys_b.append(best)
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    if xs_b:
        ax.step(xs_b, ys_b, where="post", label="best so far", color="k")
    spent = 0.0  # every run at the target fidelity as a dot at the budget spent when it finished
    for r in counted:
        spent += r.flops
        if r.ok and r.objective is not None and r.fidelity == target:
            ax.scatter([spent], [r.objective], s=14, color="C0", alpha=0.6)
    ax.set(xlabel="proxy FLOPs spent", ylabel="objective (target fidelity)",
           title=f"{cfg.search.strategy}: runs and best vs budget")
    if xs_b:
        ax.legend(fontsize=7)
    save(fig, "best_vs_budget.png")

    # 4. loss vs fidelity; with one fidelity, every run's objective in launch order by where it came from
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    fl = cfg.proxy.fidelity_list()
    if len(fl) > 1:
        for f in sorted({r.fidelity for r in ok}):
            rs = [r for r in ok if r.fidelity == f]
            ax.scatter([r.flops for r in rs], [r.objective for r in rs], s=16,
                       label=f"{fl[f].preset} / {fl[f].tokens:,} tok" if f < len(fl) else str(f))
        ax.set_xscale("log")
        ax.set(xlabel="training FLOPs", ylabel="objective", title="loss vs fidelity")
        name = "loss_vs_fidelity.png"
    else:
        order = {r.run_id: i for i, r in enumerate(sorted(runs, key=lambda r: r.run_id))}
        for source in sorted({r.source for r in ok}):
            rs = [r for r in ok if r.source == source]
            ax.scatter([order[r.run_id] for r in rs], [r.objective for r in rs], s=16, label=source)
        ax.set(xlabel="run (launch order)", ylabel="objective",
               title=f"runs by source ({fl[0].preset} / {fl[0].tokens:,} tok)")
        name = "runs_by_source.png"
    if ok:
        ax.legend(fontsize=7)
    save(fig, name)

    # 5. run-to-run noise per repeated mixture
    spread = mixture_spread(table, space.objective)
    if spread:
        fig, ax = plt.subplots(figsize=(max(4.8, 0.35 * len(spread) + 2), 3.6))
        xs = np.arange(len(spread))
        ax.errorbar(xs, [g["mean"] for g in spread], yerr=[g["std"] for g in spread], fmt="o", capsize=3,
                    label="mean ± std")
        for x, g in zip(xs, spread, strict=True):
            ys = table.objective(space.objective)[[table.run_ids.index(r) for r in g["run_ids"]]]
            ax.scatter(np.full(len(ys), x), ys, s=8, c="grey", zorder=3)
        ax.set_xticks(xs, [f"{g['n']}x" for g in spread], fontsize=7)
        ax.set(xlabel="repeated mixture (sorted by mean; runs each)", ylabel="objective (target fidelity)",
               title="run-to-run noise per mixture")
        ax.legend(fontsize=7)
        save(fig, "noise_by_mixture.png")
    return paths
