"""Load the demo pool (``runs.csv`` + ``curves.csv``, written by ``make_demo_pool.py``) as a run table.

One row per run: the mixture over the six demo domains, the fidelity ``(tokens, n_params)`` (three levels,
cheapest first), the cost (training FLOPs by default), the final per-domain validation losses (targets named by domain,
nats/token) and the run's eval curve (``x`` = tokens seen).

>>> t = load_demo_pool("experiments/data/demo_pool")            # doctest: +SKIP
>>> t.summary()                                                  # doctest: +SKIP
'210 runs x 6 domains -> 6 targets, fidelity ['tokens', 'n_params'] at 3 level(s) (0 rows skipped)'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mixopt.runs import RunTable

__all__ = ["FIDELITY", "load_demo_pool"]

FIDELITY = ["tokens", "n_params"]  # tokens budget and model size grow together: one column each


def load_demo_pool(folder: str | Path = "experiments/data/demo_pool", cost: str = "flops") -> RunTable:
    """The runs of ``folder`` as a :class:`~mixopt.runs.RunTable` (``run_ids`` = the ``run`` column, so
    ``runs.csv``'s ``mixture`` and ``seed`` join back on it); ``cost`` is each run's training FLOPs (the
    default: the same on any machine) or ``"seconds"`` (its wall time, which depended on machine load)."""
    folder = Path(folder)
    runs = pd.read_csv(folder / "runs.csv")
    curves = {r: g.sort_values("tokens_seen") for r, g in pd.read_csv(folder / "curves.csv").groupby("run")}
    domains = [c[len("w_"):] for c in runs.columns if c.startswith("w_")]
    records = []
    for row in runs.to_dict("records"):
        c = curves.get(row["run"])
        records.append({
            "run_id": row["run"], "tokens": row["tokens"], "n_params": row["n_params"], "cost": row[cost],
            "weights": {d: row[f"w_{d}"] for d in domains},
            "final_loss": {d: row[f"loss_{d}"] for d in domains},
            "tokens_seen": None if c is None else c["tokens_seen"].tolist(),
            "val_loss": None if c is None else {d: np.asarray(c[f"loss_{d}"]).tolist() for d in domains},
        })
    table = RunTable.from_records(records, domains=domains, targets=domains, fidelity=FIDELITY, cost="cost",
                                  quantity="tokens")
    table.source = str(folder)
    return table
