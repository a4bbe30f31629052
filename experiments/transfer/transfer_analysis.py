"""Statistics, tables and the plot of the transfer experiment (no training, no MLflow here).

Inputs are plain records: one per trained model, ``{"mixture", "scale" ("proxy"|"target"), "seed",
"final_loss": {domain: nats/token}, "status"}``, and the mixture table ``{name: {"kind", "weights",
"objectives"}}``. An objective is a weighted mean of per-domain validation losses (lower is better).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["objective_value", "summarise", "write_outputs"]

BASELINES = ("uniform", "natural")


def objective_value(final_loss: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean of per-domain validation losses (nats/token); NaN when a domain is missing."""
    try:
        return float(sum(w * final_loss[d] for d, w in weights.items()))
    except KeyError:
        return math.nan


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float]:
    """Mean of a-b over the seeds both have, and the paired t-test p-value (NaN below 2 pairs)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return math.nan, math.nan
    da = np.array([a[s] for s in seeds])
    db = np.array([b[s] for s in seeds])
    delta = float(np.mean(da - db))
    if len(seeds) < 2 or np.allclose(da - db, (da - db)[0]):
        return delta, math.nan
    return delta, float(stats.ttest_rel(da, db).pvalue)


def summarise(records: list[dict], mixtures: dict[str, dict], objectives: dict[str, dict[str, float]]) -> dict:
    """Per objective: a table of mixtures (mean ± std per scale, ranks, deltas vs baselines) and summary.

    Returns ``{objective: {"table": DataFrame, "spearman": rho, "spearman_p": p, "n": int, ...}}``.
    Std is over seeds (ddof=1). Ranks: 1 = lowest mean objective.
    """
    out = {}
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    for obj, ow in objectives.items():
        per: dict[str, dict[str, dict[int, float]]] = {}
        for r in ok:
            m = r["mixture"]
            if m not in mixtures or obj not in mixtures[m]["objectives"]:
                continue
            v = objective_value(r["final_loss"], ow)
            if math.isfinite(v):
                per.setdefault(m, {}).setdefault(r["scale"], {})[int(r["seed"])] = v
        rows = []
        for m, scales in per.items():
            row = {"mixture": m, "kind": mixtures[m]["kind"]}
            for sc in ("proxy", "target"):
                vals = np.array(list(scales.get(sc, {}).values()))
                row[f"{sc}_mean"] = float(vals.mean()) if len(vals) else math.nan
                row[f"{sc}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
                row[f"{sc}_n"] = len(vals)
            for base in BASELINES:
                if base in per and m != base:
                    row[f"delta_vs_{base}"], row[f"p_vs_{base}"] = _paired(
                        scales.get("target", {}), per[base].get("target", {})
                    )
                else:
                    row[f"delta_vs_{base}"], row[f"p_vs_{base}"] = math.nan, math.nan
            row["weights"] = json.dumps({d: round(w, 4) for d, w in mixtures[m]["weights"].items()})
            rows.append(row)
        table = pd.DataFrame(rows)
        if table.empty:
            out[obj] = {"table": table, "spearman": math.nan, "spearman_p": math.nan, "n": 0}
            continue
        table["target_rank"] = table["target_mean"].rank(method="min").astype("Int64")
        table["proxy_rank"] = table["proxy_mean"].rank(method="min").astype("Int64")
        table = table.sort_values(["target_mean", "proxy_mean"], na_position="last").reset_index(drop=True)
        # a mixture proposed by several strategies is one point, not several tied ones
        table["same_as"] = ""
        first: dict[tuple, str] = {}
        for i, r in table.iterrows():
            key = (r["weights"], r["kind"] == "online")
            if key in first:
                table.loc[i, "same_as"] = first[key]
            else:
                first[key] = r["mixture"]
        both = table[table["same_as"] == ""].dropna(subset=["proxy_mean", "target_mean"])
        rho, p = (math.nan, math.nan)
        if len(both) >= 3:
            res = stats.spearmanr(both["proxy_mean"], both["target_mean"])
            rho, p = float(res.statistic), float(res.pvalue)
        best_proxy = both.loc[both["proxy_mean"].idxmin(), "mixture"] if len(both) else None
        best_target = both.loc[both["target_mean"].idxmin(), "mixture"] if len(both) else None
        pooled_sd = float(np.sqrt(np.nanmean(table["target_std"] ** 2))) if table["target_std"].notna().any() else math.nan
        out[obj] = {
            "table": table,
            "spearman": rho,
            "spearman_p": p,
            "n": int(len(both)),
            "best_at_proxy": best_proxy,
            "best_at_target": best_target,
            "seed_sd_target": pooled_sd,
        }
    return out


def _fmt(mean: float, sd: float) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.4f} ± {sd:.4f}" if math.isfinite(sd) else f"{mean:.4f}"


def _verdict(delta: float, p: float) -> str:
    if not math.isfinite(delta):
        return "—"
    word = "better" if delta < 0 else "worse"
    sig = f"p={p:.2f}" if math.isfinite(p) else "p=n/a"
    return f"{delta:+.4f} ({word}, {sig})"


def markdown_table(summary: dict, objective: str) -> str:
    """The per-objective results table in Markdown (target objective mean ± std over seeds)."""
    s = summary[objective]
    t = s["table"]
    lines = [
        "| rank | mixture | kind | target objective | proxy objective | proxy rank | Δ vs uniform | Δ vs natural |",
        "|---:|---|---|---|---|---:|---|---|",
    ]
    for _, r in t.iterrows():
        lines.append(
            f"| {r['target_rank'] if pd.notna(r['target_rank']) else '—'} | {r['mixture']} | {r['kind']} "
            f"| {_fmt(r['target_mean'], r['target_std'])} | {_fmt(r['proxy_mean'], r['proxy_std'])} "
            f"| {r['proxy_rank'] if pd.notna(r['proxy_rank']) else '—'} "
            f"| {_verdict(r['delta_vs_uniform'], r['p_vs_uniform'])} "
            f"| {_verdict(r['delta_vs_natural'], r['p_vs_natural'])} |"
        )
    dup = t[t["same_as"] != ""] if "same_as" in t else t.iloc[:0]
    if len(dup):
        lines.append("")
        lines.append("Identical mixtures (trained once): "
                     + "; ".join(f"{r['mixture']} = {r['same_as']}" for _, r in dup.iterrows()) + ".")
    rho = s["spearman"]
    lines.append("")
    lines.append(
        f"Spearman(proxy-scale, target-scale objective) over {s['n']} distinct mixtures: "
        + (f"ρ = {rho:.2f} (p = {s['spearman_p']:.3f})" if math.isfinite(rho) else "n/a (fewer than 3 mixtures)")
        + f"; best at proxy scale: {s.get('best_at_proxy')}, best at target scale: {s.get('best_at_target')}; "
        f"pooled seed std at target scale: {s.get('seed_sd_target', math.nan):.4f}."
    )
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """One column per objective: target objective per mixture (mean ± std), and proxy vs target scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objs = [o for o in summary if not summary[o]["table"].empty]
    if not objs:
        return
    colours = {"baseline": "tab:gray", "strategy": "tab:blue", "best-observed": "tab:green", "online": "tab:orange"}
    fig, axes = plt.subplots(2, len(objs), figsize=(5.5 * len(objs), 8), squeeze=False)
    for j, obj in enumerate(objs):
        t = summary[obj]["table"]
        ax = axes[0, j]
        y = np.arange(len(t))
        ax.errorbar(t["target_mean"], y, xerr=t["target_std"].fillna(0), fmt="none", ecolor="gray", capsize=3)
        ax.scatter(t["target_mean"], y, c=[colours.get(k, "k") for k in t["kind"]], zorder=3, s=40)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(y, t["mixture"], fontsize=8)
        ax.invert_yaxis()
        lo, hi = np.nanmin(t["target_mean"] - t["target_std"].fillna(0)), np.nanmax(t["target_mean"] + t["target_std"].fillna(0))
        pad = max(hi - lo, 1e-3) * 0.15
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel("target-scale objective (val loss, nats/token; lower is better)")
        ax.set_title(f"objective: {obj}")
        ax = axes[1, j]
        ax.errorbar(t["proxy_mean"], t["target_mean"], xerr=t["proxy_std"].fillna(0), yerr=t["target_std"].fillna(0),
                    fmt="none", ecolor="lightgray")
        ax.scatter(t["proxy_mean"], t["target_mean"], c=[colours.get(k, "k") for k in t["kind"]], zorder=3)
        for _, r in t.iterrows():
            if r.get("same_as"):
                continue
            same = [m for m in t.loc[t["same_as"] == r["mixture"], "mixture"]] if "same_as" in t else []
            label = r["mixture"] + (f" (= {len(same)} more)" if same else "")
            ax.annotate(label, (r["proxy_mean"], r["target_mean"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        rho = summary[obj]["spearman"]
        ax.set_title(f"proxy vs target scale (Spearman ρ = {rho:.2f})" if math.isfinite(rho) else "proxy vs target")
        ax.set_xlabel("proxy-scale objective")
        ax.set_ylabel("target-scale objective")
    handles = [plt.Line2D([], [], marker="s", ls="", color=c, label=k) for k, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(colours), fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def per_domain(records: list[dict], mixtures: dict[str, dict], scale: str = "target") -> pd.DataFrame:
    """Mean over seeds of each domain's final validation loss, one row per mixture (index), at ``scale``."""
    rows = [{"mixture": r["mixture"], **r["final_loss"]} for r in records
            if r["scale"] == scale and r.get("status", "ok") == "ok" and r["mixture"] in mixtures]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby("mixture", sort=False).mean()


def write_outputs(summary: dict, out_dir: Path, header: str, domain_table: pd.DataFrame | None = None) -> Path:
    """Write ``table_<objective>.csv``, ``per_domain_target.csv``, ``summary.json``, ``transfer.png`` and
    ``summary.md`` into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = {}
    md = [header]
    for obj, s in summary.items():
        s["table"].to_csv(out_dir / f"table_{obj}.csv", index=False, float_format="%.5f")
        js[obj] = {k: v for k, v in s.items() if k != "table"} | {"table": json.loads(s["table"].to_json(orient="records"))}
        if not s["table"].empty:
            md += [f"\n### Objective `{obj}`\n", markdown_table(summary, obj)]
    if domain_table is not None and not domain_table.empty:
        domain_table.to_csv(out_dir / "per_domain_target.csv", float_format="%.5f")
        cols = list(domain_table.columns)
        md += ["\n### Per-domain validation loss at the target scale (mean over seeds, nats/token)\n",
               "| mixture | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        md += [f"| {m} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |" for m, row in domain_table.iterrows()]
    (out_dir / "summary.json").write_text(json.dumps(js, indent=1, default=str) + "\n")
    plot(summary, out_dir / "transfer.png")
    (out_dir / "summary.md").write_text("\n".join(md) + "\n")
    return out_dir / "summary.md"
