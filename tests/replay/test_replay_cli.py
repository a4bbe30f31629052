"""`mixopt replay` end to end: the shared RegMix tables, a multi-fidelity CSV, and malformed columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from replay_tables import synthetic_table

from mixopt.cli import main


def test_cli_on_shared_regmix_tables(regmix_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["replay", str(regmix_dir / "train_mixture_1m.csv"), str(regmix_dir / "test_mixture_1m.csv"),
            "--join", str(regmix_dir / "train_pile_loss_1m.csv"), str(regmix_dir / "test_pile_loss_1m.csv"),
            "--on", "index", "--weights", "train_", "--targets", "metric/", "--objective", "pile_cc=1",
            "--strategy", "random,regmix", "--seeds", "2", "--budget", "12", "--n-init", "6",
            "--set", "regmix.n_min=6", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pool: 768 mixtures" in printed and "192.2 target runs" in printed
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves.strategy) == {"random", "regmix"} and len(curves) == 2 * 2 * 12
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.strategy) == ["random", "regmix"]
    assert (out / "regret_vs_cost.png").stat().st_size > 10_000
    # MLflow: a parent run and one child run per strategy/seed, the curve logged per reveal
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mixopt-replay")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(runs) == 5 and len(children) == 4
    hist = client.get_metric_history(children[0].info.run_id, "regret")
    assert [m.step for m in hist] == list(range(1, 13))


def _write(tmp_path: Path, df: pd.DataFrame) -> Path:
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    return path


def _argv(path: Path, *extra: str) -> list[str]:
    return ["replay", str(path), "--weights", "w_", "--targets", "loss_", "--strategy", "random",
            "--seeds", "1", "--budget", "3", "--no-mlflow", *extra]


def test_cli_multi_fidelity_with_cost_column(tmp_path, capsys):
    path = _write(tmp_path, synthetic_table(30))
    out = tmp_path / "out"
    assert main(_argv(path, "--fidelity-column", "size", "--cost-column", "hours", "--out", str(out))) == 0
    assert "30 mixtures x 2 fidelities (costs 0.5, 4)" in capsys.readouterr().out
    curves = pd.read_csv(out / "curves.csv")
    assert curves["cost"].isin([0.5, 4.0]).all() and curves["cum_cost"].iloc[-1] >= 3


@pytest.mark.parametrize(
    "mutate, extra, message",
    [
        (lambda d: d, ["--fidelity-column", "n_params"], ("fidelity column", "'n_params'")),
        (lambda d: d.assign(size=d["size"].astype(object).where(d.index != 2, "big")), ["--fidelity-column", "size"],
         "column 'size' is not numeric"),
        (lambda d: d, ["--fidelity-column", "size", "--cost-column", "gpu_hours"], "cost column(s) ['gpu_hours']"),
        (lambda d: d.assign(hours=d["hours"].where(d.index != 5, 0.0)),
         ["--fidelity-column", "size", "--cost-column", "hours"], "cost column 'hours' must be positive"),
        (lambda d: d.assign(hours=d["hours"].where(d.index != 5, -1.0)),
         ["--fidelity-column", "size", "--cost-column", "hours"], "cost column 'hours' must be positive"),
        (lambda d: d, ["--fidelity-column", "size", "--target-fidelity", "4"],
         ("target fidelity [4.0] is not among", "[[1.0], [8.0]]")),
        (lambda d: d, ["--strategy", "annealing"], "--strategy: unknown ['annealing']"),
    ],
)
def test_cli_malformed_columns_give_one_line_errors(tmp_path, capsys, mutate, extra, message):
    path = _write(tmp_path, mutate(synthetic_table(20)))
    out = tmp_path / "out"
    assert main(_argv(path, *extra, "--out", str(out))) == 2
    err = capsys.readouterr().err.strip()
    parts = (message,) if isinstance(message, str) else message
    assert err.startswith("error: ") and all(p in err for p in parts) and "\n" not in err
    assert not out.exists()  # nothing half-written
