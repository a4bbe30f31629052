"""Replay outputs: curves and summary CSVs, a regret-vs-cost plot, and (separately) MLflow logging.

Files written by :func:`write_outputs` into the output folder:

- ``curves.csv`` — one row per (strategy, seed, reveal): what was revealed, cumulative cost, recommended
  pool mixture, its true objective, regret and rank.
- ``curves_mean.csv`` — per (strategy, reveal): the means over seeds of cum_cost, regret and rank.
- ``summary.csv`` — per strategy: cost / reveals to reach rank 1 and the top 3, regret and rank at budget
  fractions.
- ``regret_vs_cost.png`` — mean regret and mean rank against cumulative cost, one line per strategy.
- ``pool.csv`` — the pool: mixture weights, objective at the target fidelity and its rank.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mixopt.replay.simulate import ReplayResult

__all__ = ["log_replay_mlflow", "mean_curves", "plot_regret", "write_outputs"]


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (strategy, reveal): mean cum_cost, regret, rank over seeds, median rank and the seed count."""
    g = curves.groupby(["strategy", "reveal"], sort=False)
    out = g.agg(cum_cost=("cum_cost", "mean"), regret=("regret", "mean"), rank=("rank", "mean"),
                median_rank=("rank", "median"), seeds=("seed", "nunique"))
    return out.reset_index()


def _on_grid(g: pd.DataFrame, grid: np.ndarray, col: str) -> np.ndarray:
    """Value of ``col`` after the last reveal with ``cum_cost <= c`` for each ``c`` in grid (NaN before)."""
    idx = np.searchsorted(g["cum_cost"].to_numpy(), grid, side="right") - 1
    vals = g[col].to_numpy(dtype=np.float64)
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)


def plot_regret(curves: pd.DataFrame, path: str | Path, *, title: str = "replay") -> Path:
    """Mean regret and mean rank (log scale) vs cumulative cost, one line per strategy (PNG, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    grid = np.linspace(float(curves.groupby(["strategy", "seed"])["cum_cost"].min().max()),
                       float(curves["cum_cost"].max()), 200)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, gs in curves.groupby("strategy", sort=False):
        per_seed = [(_on_grid(g, grid, "regret"), _on_grid(g, grid, "rank")) for _, g in gs.groupby("seed")]
        reg = np.nanmean(np.stack([r for r, _ in per_seed]), axis=0)
        rank = np.nanmean(np.stack([k for _, k in per_seed]), axis=0)
        ax1.plot(grid, reg, label=name)
        ax2.plot(grid, rank, label=name)
    ax1.set(xlabel="cumulative cost", ylabel="simple regret (mean over seeds)", title=title)
    ax2.set(xlabel="cumulative cost", ylabel="true rank of recommendation (mean)", yscale="log")
    ax2.axhline(3, color="grey", lw=0.8, ls="--")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: ReplayResult, out_dir: str | Path, *, title: str = "replay") -> dict[str, Path]:
    """Write the CSVs and the plot (see the module docstring) into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.csv" for name in ("curves", "curves_mean", "summary", "pool")}
    result.curves.to_csv(paths["curves"], index=False)
    mean_curves(result.curves).to_csv(paths["curves_mean"], index=False)
    result.summary.to_csv(paths["summary"], index=False)
    pool = result.pool
    obj = pool.values[:, -1]
    table = pd.DataFrame(pool.X, columns=pool.domains)
    table["objective"] = obj
    table["rank"] = np.argsort(np.argsort(obj, kind="stable"), kind="stable") + 1
    table.to_csv(paths["pool"], index_label="candidate")
    paths["plot"] = plot_regret(result.curves, out / "regret_vs_cost.png", title=title)
    return paths


def log_replay_mlflow(
    result: ReplayResult,
    *,
    tracking_uri: str,
    experiment: str = "mixopt-replay",
    run_name: str = "replay",
    params: dict | None = None,
    artifacts: list[Path] | None = None,
    artifact_root: str | Path | None = None,
) -> str:
    """Log a replay to MLflow: a parent run (params, summary metrics, artifacts) and one child run per
    (strategy, seed) with its curve as metrics (``regret``, ``rank``, ``cum_cost``, ``objective``, step =
    reveal). Returns the parent run id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        loc = Path(artifact_root).resolve().as_uri() if artifact_root is not None else None
        exp_id = client.create_experiment(experiment, artifact_location=loc)
    else:
        exp_id = exp.experiment_id
    ts = int(pd.Timestamp.now().timestamp() * 1000)
    parent = client.create_run(exp_id, run_name=run_name, tags={"mixopt.role": "replay"})
    pid = parent.info.run_id
    p = {"pool_size": result.pool.X.shape[0], "fidelities": result.pool.fidelity_values.tolist(),
         "budget": result.budget, "targets": ",".join(result.pool.target_names)[:500]} | dict(params or {})
    metrics = [
        Metric(f"{row['strategy']}.{col.replace('@', '_at_')}", float(v), ts, 0)
        for row in result.summary.to_dict("records")
        for col, v in row.items()
        if col != "strategy" and isinstance(v, int | float) and math.isfinite(v)
    ]
    client.log_batch(pid, metrics=metrics[:1000], params=[Param(k, str(v)[:6000]) for k, v in p.items()][:100])
    for path in artifacts or []:
        client.log_artifact(pid, str(path))
    for (name, seed), g in result.curves.groupby(["strategy", "seed"], sort=False):
        child = client.create_run(exp_id, run_name=f"{name}-seed{seed}",
                                  tags={"mlflow.parentRunId": pid, "strategy": name, "seed": str(seed)})
        cid = child.info.run_id
        ms = [Metric(key, float(v), ts, int(step))
              for step, *vals in g[["reveal", "regret", "rank", "cum_cost", "objective"]].itertuples(index=False)
              for key, v in zip(("regret", "rank", "cum_cost", "objective"), vals, strict=True)]
        tags = [RunTag("mixopt.role", "replay-strategy")]
        client.log_batch(cid, params=[Param("strategy", name), Param("seed", str(seed))], tags=tags)
        for i in range(0, len(ms), 1000):
            client.log_batch(cid, metrics=ms[i : i + 1000])
        client.set_terminated(cid)
    client.set_terminated(pid)
    return pid
