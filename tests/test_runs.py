"""Run tables from files (one or joined) and from run records; row validation; `mixopt fit` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixopt.cli import main
from mixopt.errors import TableError
from mixopt.runs import RunTable, load_run_table


def _table(tmp_path, n=30, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(3), n)
    df = pd.DataFrame(W, columns=["mix.alpha", "mix.beta", "mix.gamma"])
    df["run"] = [f"r{i}" for i in range(n)]
    df["eval.alpha"] = 3.0 - W[:, 0]
    df["eval.beta"] = 3.5 - 2 * W[:, 1]
    df["tokens"] = 1e6
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    return path


def test_load_single_file_with_other_names(tmp_path):
    t = load_run_table(_table(tmp_path), weights=r"mix\.", targets="eval.", fidelity="tokens")
    assert t.domains == ["alpha", "beta", "gamma"] and t.target_names == ["eval.alpha", "eval.beta"]
    assert t.weights.shape == (30, 3) and t.fidelity.shape == (30, 1) and t.fidelity_columns == [3]
    assert t.X.shape == (30, 4) and t.target_domains() == [0, 1]
    np.testing.assert_allclose(t.objective(), t.targets.mean(axis=1))
    np.testing.assert_allclose(t.objective({"alpha": 1.0}), t.targets[:, 0])


def test_bad_rows_are_reported_and_skipped(tmp_path):
    path = _table(tmp_path)
    df = pd.read_csv(path)
    df.loc[2, "eval.beta"] = np.nan
    df.loc[4, "mix.alpha"] = -0.1
    df.loc[6, ["mix.alpha", "mix.beta", "mix.gamma"]] = [0.5, 0.5, 0.5]
    df.loc[8, "mix.beta"] += 0.02  # slightly off: renormalised, kept
    df.to_csv(path, index=False)
    t = load_run_table(path, weights="mix", targets="eval")
    assert len(t) == 27 and len(t.skipped) == 3
    assert "row 2" in t.skipped[0] and "eval.beta" in t.skipped[0]
    assert "negative weight" in t.skipped[1] and "sum to 1.5" in t.skipped[2]
    np.testing.assert_allclose(t.weights.sum(axis=1), 1.0)


def test_malformed_tables_raise_one_line_table_errors(tmp_path):
    path = _table(tmp_path)
    cases = [
        (dict(weights="nope_", targets="eval"), "no weight column matches 'nope_'"),
        (dict(weights="mix", targets="eval.alpha,missing"), "not in the table"),
        (dict(weights="mix", targets="run"), "column 'run' is not numeric"),
        (dict(weights="mix", targets="(("), "not a valid regular expression"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(TableError, match=msg) as e:
            load_run_table(path, **kwargs)
        assert "\n" not in str(e.value)
    bad = tmp_path / "allbad.csv"
    pd.DataFrame({"w_a": [0.5, -1.0], "w_b": [0.1, 2.0], "l": [1.0, 2.0]}).to_csv(bad, index=False)
    with pytest.raises(TableError, match="no valid rows"):
        load_run_table(bad, weights="w_", targets="l")
    with pytest.raises(TableError, match="no such file"):
        load_run_table(tmp_path / "absent.csv", weights="w", targets="l")


def test_two_files_joined_on_a_key(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(2), 10)
    pd.DataFrame({"id": range(10), "p_x": W[:, 0], "p_y": W[:, 1]}).to_parquet(tmp_path / "mix.parquet")
    pd.DataFrame({"id": list(range(1, 11))[::-1], "loss": 3 - W[np.arange(1, 11)[::-1] % 10, 0]}).to_csv(
        tmp_path / "loss.csv", index=False)
    t = load_run_table([tmp_path / "mix.parquet", tmp_path / "loss.csv"], weights="p_", targets="loss")
    assert len(t) == 9 and any("id=0" in s for s in t.skipped) and any("id=10" in s for s in t.skipped)
    i = t.run_ids.index("3")
    assert t.targets[i, 0] == pytest.approx(3 - W[3, 0])  # rows matched by key, not by position


def test_from_records_same_path_as_the_search():
    recs = []
    rng = np.random.default_rng(0)
    for i in range(6):
        w = rng.dirichlet(np.ones(2))
        recs.append({"run_id": f"r{i}", "weights": {"a": w[0], "b": w[1]}, "tokens": 1000 * (1 + i % 2),
                     "status": "ok", "final_loss": {"a": 3 - w[0], "b": 3 - w[1]},
                     "tokens_seen": [500, 1000], "val_loss": {"a": [3.5 - w[0], 3 - w[0]], "b": [3.5, 3.0]}})
    recs.append({"run_id": "bad", "weights": {"a": 1.0, "b": 0.0}, "status": "failed", "reason": "diverged",
                 "final_loss": {}})
    t = RunTable.from_records(recs, fidelity=["tokens"])
    assert len(t) == 6 and t.domains == ["a", "b"] and t.target_names == ["a", "b"]
    assert t.fidelity_names == ["tokens"] and "diverged" in t.skipped[0]
    c = RunTable.from_records(recs, curves=True)
    assert len(c) == 12 and c.fidelity_names == ["tokens_seen"] and c.target_domains() == [0, 1]
    with pytest.raises(TableError, match="no successful runs"):
        RunTable.from_records(recs[-1:])


def test_regmix_tables_join_on_index(regmix_dir):
    t = load_run_table([regmix_dir / "train_mixture_1m.csv", regmix_dir / "train_pile_loss_1m.csv"],
                       weights="train_", targets="metric/")
    assert t.weights.shape == (512, 17) and t.targets.shape == (512, 13) and not t.skipped
    td = t.target_domains()
    assert td is not None and [t.domains[i] for i in td][:2] == ["arxiv", "freelaw"]


def test_cli_fit_on_the_shared_tables(regmix_dir, tmp_path, capsys):
    sub = tmp_path / "mix.csv"
    pd.read_csv(regmix_dir / "train_mixture_1m.csv").head(96).to_csv(sub, index=False)
    rc = main(["fit", str(sub), "--join", str(regmix_dir / "train_pile_loss_1m.csv"), "--on", "index",
               "--weights", "train_", "--targets", "metric/", "--surrogate", "auto",
               "--params", '{"candidates": ["linear", "mixing_law"], "n_folds": 3}', "--propose",
               "--max-weight", "0.5", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0 and "96 runs x 17 domains -> 13 targets" in out and "proposal (auto->" in out
    prop = json.loads((tmp_path / "out" / "proposal.json").read_text())
    w = np.array(list(prop["weights"].values()))
    assert abs(w.sum() - 1) < 1e-9 and w.max() <= 0.5 + 1e-12
    cv = json.loads((tmp_path / "out" / "cv.json").read_text())
    assert {r["surrogate"] for r in cv} == {"linear", "mixing_law"} and sum(r["chosen"] for r in cv) == 1


def test_cli_reports_table_errors(tmp_path, capsys):
    rc = main(["fit", str(_table(tmp_path)), "--weights", "zzz", "--targets", "eval"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: no weight column matches 'zzz'") and err.count("\n") == 1


def test_cli_single_surrogate_with_cv(tmp_path, capsys):
    rc = main(["fit", str(_table(tmp_path)), "--weights", "mix", "--targets", "eval", "--surrogate", "linear",
               "--folds", "3", "--propose", "--objective", "eval.alpha=1", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0 and "linear" in out
    prop = json.loads((tmp_path / "o" / "proposal.json").read_text())
    assert prop["weights"]["alpha"] > 0.99  # eval.alpha = 3 - w_alpha: all alpha is optimal
