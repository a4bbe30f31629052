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
from mixopt.surrogates import fit_model, surrogate_inputs


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


def _records(n=6, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        w = rng.dirichlet(np.ones(2))
        recs.append({"run_id": f"r{i}", "weights": {"a": w[0], "b": w[1]}, "tokens": 1000 * (1 + i % 2),
                     "status": "ok", "final_loss": {"a": 3 - w[0], "b": 3 - w[1]},
                     "tokens_seen": [500, 1000], "val_loss": {"a": [3.5 - w[0], 3 - w[0]], "b": [3.5, 3.0]}})
    recs.append({"run_id": "bad", "weights": {"a": 1.0, "b": 0.0}, "tokens": 1000, "status": "failed",
                 "reason": "diverged", "final_loss": {}})
    return recs


def test_from_records_same_path_as_the_search():
    recs = _records()
    t = RunTable.from_records(recs, fidelity=["tokens"])
    assert len(t) == 6 and t.domains == ["a", "b"] and t.target_names == ["a", "b"]
    assert t.fidelity_names == ["tokens"] and "diverged" in t.skipped[0] and t.target_domains() == [0, 1]
    assert t.run_ids == [f"r{i}" for i in range(6)] and t.ok.all()
    # the two token budgets are the levels, cheapest first; the larger is the target
    np.testing.assert_array_equal(t.levels, [[1000.0], [2000.0]])
    np.testing.assert_array_equal(t.level, [0, 1, 0, 1, 0, 1])
    assert t.target_fidelity.tolist() == [2000.0]
    # one row per run; each keeps its eval curve (x in tokens seen, one column per target)
    assert t.quantity == "tokens" and len(t.curves) == 6
    for r, (x, Yc) in zip(recs[:6], t.curves, strict=True):
        np.testing.assert_array_equal(x, [500, 1000])
        np.testing.assert_allclose(Yc, np.column_stack([r["val_loss"]["a"], r["val_loss"]["b"]]))
    assert RunTable.from_records(recs, fidelity=["tokens"], curves=False).curves is None
    # the curves become rows only for a surrogate that asks, and only below the target
    inp = surrogate_inputs(t, curves=True)
    assert inp.curve_rows == 3 * 2 and len(inp.X) == 3 * 2 + 3
    with pytest.raises(TableError, match="no successful runs"):
        RunTable.from_records(recs[-1:])


def test_from_records_with_search_levels_and_costs():
    recs = [{"run_id": f"r{i}", "weights": {"a": 0.1 * (i + 1), "b": 1 - 0.1 * (i + 1)}, "level": i % 2,
             "final_loss": {"a": 3.0 + i}, "flops": 1e9 * (1 + 9 * (i % 2))} for i in range(4)]
    t = RunTable.from_records(recs, fidelity=["tokens"], levels=[[1e6], [1e7]], level_costs=[1.0, 10.0])
    np.testing.assert_array_equal(t.fidelity[:, 0], [1e6, 1e7, 1e6, 1e7])
    np.testing.assert_array_equal(t.level_costs, [1.0, 10.0])
    np.testing.assert_array_equal(t.cost, [1e9, 1e10, 1e9, 1e10])  # each run's own cost (flops)
    assert t.target_names == ["a"] and t.curves == [None] * 4


def test_failed_runs_kept_as_rows_on_request():
    recs = _records()
    t = RunTable.from_records(recs, fidelity=["tokens"], keep_failed=True)
    assert len(t) == 7 and t.run_ids[-1] == "bad" and t.status[-1] == "failed"
    assert np.isnan(t.targets[-1]).all() and t.curves[-1] is None
    np.testing.assert_array_equal(t.ok, [True] * 6 + [False])
    assert not t.at_level(0)[-1] and t.at_level(0).sum() == 3  # a failed run is at no level
    assert np.isnan(t.objective()[-1]) and np.isfinite(t.objective()[:-1]).all()
    assert t.ok_runs().run_ids == [f"r{i}" for i in range(6)]
    assert len(surrogate_inputs(t).X) == 6  # models never see it
    with pytest.raises(TableError, match="no successful runs"):
        RunTable.from_records(recs[-1:])
    only = RunTable.from_records(recs[-1:], fidelity=["tokens"], keep_failed=True)
    assert len(only) == 1 and not only.ok.any()


def _two_level(seed=0, cost=True):
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(3), 12)
    tokens = np.array([4e6, 1e6] * 6)
    Y = np.column_stack([3 - W[:, 0], 3 - W[:, 1]]) + 1e3 / np.sqrt(tokens)[:, None]
    c = tokens / 1e6 * (1 + 0.1 * rng.random(12)) if cost else None
    return W, Y, tokens, c


def test_from_arrays_with_fidelity_and_cost():
    W, Y, tokens, c = _two_level()
    t = RunTable.from_arrays(W, Y, domains=["a", "b", "c"], target_names=["la", "lb"], fidelity=tokens,
                             fidelity_names=["tokens"], cost=c)
    np.testing.assert_array_equal(t.levels, [[1e6], [4e6]])  # cheapest first, whatever the row order
    np.testing.assert_array_equal(t.level, np.where(tokens == 1e6, 0, 1))
    np.testing.assert_allclose(t.level_costs, [c[tokens == 1e6].mean(), c[tokens == 4e6].mean()])
    np.testing.assert_allclose(t.cost, c)
    assert t.target_level == 1 and t.target_fidelity.tolist() == [4e6]
    assert t.fidelity_names == ["tokens"] and t.fidelity_columns == [3]
    np.testing.assert_array_equal(t.at_level(-1), tokens == 4e6)
    np.testing.assert_array_equal(t.at_level(0), tokens == 1e6)
    # costs decide the order: a level that is smaller but costs more comes last
    inverted = RunTable.from_arrays(W, Y, fidelity=tokens, cost=np.where(tokens == 1e6, 50.0, 1.0))
    np.testing.assert_array_equal(inverted.levels, [[4e6], [1e6]])
    np.testing.assert_array_equal(inverted.level_costs, [1.0, 50.0])
    # without costs, a level costs its size relative to the target
    np.testing.assert_allclose(RunTable.from_arrays(W, Y, fidelity=tokens).level_costs, [0.25, 1.0])
    with pytest.raises(TableError, match="cost column has 3 values for 12 rows"):
        RunTable.from_arrays(W, Y, fidelity=tokens, cost=[1, 2, 3])
    bad = c.copy()
    bad[2] = -1.0
    neg = RunTable.from_arrays(W, Y, fidelity=tokens, cost=bad)
    assert len(neg) == 11 and "non-positive or missing cost" in neg.skipped[0]


def test_target_fidelity_keeps_higher_levels_as_evidence():
    W, Y, tokens, c = _two_level()
    t = RunTable.from_arrays(W, Y, fidelity=tokens, cost=c, target_fidelity=1e6)
    np.testing.assert_array_equal(t.levels, [[1e6]])
    assert len(t) == 12 and any("evidence only" in s for s in t.skipped)
    np.testing.assert_array_equal(t.at_level(-1), tokens == 1e6)
    with pytest.raises(TableError, match=r"target fidelity \[2000000.0\] is not among"):
        RunTable.from_arrays(W, Y, fidelity=tokens, target_fidelity=2e6)


def test_take_keeps_the_table_shape():
    recs = _records()
    t = RunTable.from_records(recs, fidelity=["tokens"])
    sub = t.take([4, 1])
    assert sub.run_ids == ["r4", "r1"] and sub.domains == t.domains and sub.target_names == t.target_names
    np.testing.assert_array_equal(sub.weights, t.weights[[4, 1]])
    np.testing.assert_array_equal(sub.levels, t.levels)  # the levels stay those of the whole table
    np.testing.assert_array_equal(sub.level_costs, t.level_costs)
    np.testing.assert_array_equal(sub.level, [0, 1])
    assert sub.curves[0] is t.curves[4] and sub.quantity == "tokens"
    mask = np.array([True, False] * 3)
    assert t.take(mask).run_ids == ["r0", "r2", "r4"]
    assert len(t.take([])) == 0 and t.take([]).n_levels == 2


def test_revealed_marks_candidates_run_at_a_level():
    W, Y, tokens, c = _two_level()
    t = RunTable.from_arrays(W, Y, fidelity=tokens, cost=c)
    other = np.random.default_rng(9).dirichlet(np.ones(3), 4)
    cands = np.vstack([W, other])
    np.testing.assert_array_equal(t.revealed(cands, 0), np.r_[tokens == 1e6, [False] * 4])
    np.testing.assert_array_equal(t.revealed(cands, -1), np.r_[tokens == 4e6, [False] * 4])
    assert not RunTable.empty(["a", "b", "c"], ["la"]).revealed(cands, 0).any()


def test_fingerprint_follows_the_content():
    W, Y, tokens, c = _two_level()
    a = RunTable.from_arrays(W, Y, fidelity=tokens, cost=c)
    b = RunTable.from_arrays(W.copy(), Y.copy(), fidelity=tokens.copy(), cost=c.copy(), run_ids=list("abcdefghijkl"))
    assert a.fingerprint() == b.fingerprint()  # same runs (the ids are labels, not content)
    assert a.take(np.arange(12)).fingerprint() == a.fingerprint()
    Y2 = Y.copy()
    Y2[3, 1] += 1e-6
    assert RunTable.from_arrays(W, Y2, fidelity=tokens, cost=c).fingerprint() != a.fingerprint()
    assert a.take(np.arange(11)).fingerprint() != a.fingerprint()
    recs = _records()
    r1 = RunTable.from_records(recs, fidelity=["tokens"])
    assert RunTable.from_records(recs, fidelity=["tokens"]).fingerprint() == r1.fingerprint()
    recs[0]["val_loss"]["b"] = [3.6, 3.0]  # only an eval curve differs
    assert RunTable.from_records(recs, fidelity=["tokens"]).fingerprint() != r1.fingerprint()


def test_load_with_cost_and_target_fidelity(tmp_path):
    W, Y, tokens, c = _two_level()
    df = pd.DataFrame({"w_a": W[:, 0], "w_b": W[:, 1], "w_c": W[:, 2], "loss_a": Y[:, 0], "loss_b": Y[:, 1],
                       "tokens": tokens, "gpu_hours": c})
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    t = load_run_table(path, weights="w_", targets="loss_", fidelity="tokens", cost="gpu_hours")
    np.testing.assert_array_equal(t.levels, [[1e6], [4e6]])
    np.testing.assert_allclose(t.cost, c)
    np.testing.assert_allclose(t.level_costs, [c[tokens == 1e6].mean(), c[tokens == 4e6].mean()])
    low = load_run_table(path, weights="w_", targets="loss_", fidelity="tokens", cost="gpu_hours",
                         target_fidelity=1e6)
    np.testing.assert_array_equal(low.levels, [[1e6]])
    assert len(low) == 12
    assert any("evidence only" in s for s in low.skipped)
    with pytest.raises(TableError, match="not among the table's fidelities"):
        load_run_table(path, weights="w_", targets="loss_", fidelity="tokens", target_fidelity=3e6)
    with pytest.raises(TableError, match="cost column 'tokens' is also a weight, target or fidelity column"):
        load_run_table(path, weights="w_", targets="loss_", fidelity="tokens", cost="tokens")


# ------------------------------------------------------------------------------- surrogate inputs
TLAW = np.array([-1.0, 0.5, 0.8])
SEEN = [250.0, 500.0, 1000.0]  # eval points of a cheap run (tokens seen)


def _curve_records(n_cheap=24, n_target=8, seed=0, n_params=False):
    """Runs of a known law: loss(w, s) = 2 + exp(w @ TLAW) + 30 (s^-1/2 - 4000^-1/2), per target, with eval
    curves; cheap runs at 1000 tokens, target runs at 4000."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_cheap + n_target):
        w = rng.dirichlet(np.ones(3))
        tokens = 1000.0 if i < n_cheap else 4000.0
        seen = SEEN if i < n_cheap else [1000.0, 2000.0, 4000.0]
        curve = [2.0 + np.exp(w @ TLAW) + 30 * (s**-0.5 - 4000**-0.5) for s in seen]
        recs.append({"run_id": f"r{i}", "weights": dict(zip("abc", w, strict=True)), "tokens": tokens,
                     "n_params": 1e6, "status": "ok", "final_loss": {"loss": curve[-1]},
                     "tokens_seen": seen, "val_loss": {"loss": curve}, "flops": tokens * 6e6})
    return RunTable.from_records(recs, fidelity=["tokens", "n_params"] if n_params else ["tokens"])


def test_surrogate_inputs_expand_cheap_runs_into_their_curves():
    t = _curve_records(n_params=True)
    cheap = np.flatnonzero(t.level == 0)
    inp = surrogate_inputs(t, curves=True)
    assert inp.curve_rows == 24 * 3 and len(inp.X) == 24 * 3 + 8
    # n_params is constant and equal to the target: dropped; tokens is kept, as X's last column
    assert inp.fidelity_names == ["tokens"] and inp.fidelity_columns == [3] and inp.X.shape[1] == 4
    assert inp.target_fidelity.tolist() == [4000.0]
    from_cheap = np.isin(inp.groups, cheap)
    assert from_cheap.sum() == 72
    assert sorted(set(inp.X[from_cheap, 3])) == SEEN  # the curve's points, at the tokens seen there
    np.testing.assert_array_equal(inp.X[~from_cheap, 3], 4000.0)  # target runs: one row, their final loss
    for g, x, y in zip(inp.groups, inp.X, inp.Y[:, 0], strict=True):
        np.testing.assert_allclose(x[:3], t.weights[g])
        assert y == pytest.approx(2.0 + np.exp(x[:3] @ TLAW) + 30 * (x[3] ** -0.5 - 4000**-0.5))

    flat = surrogate_inputs(t, curves=False)
    assert flat.curve_rows == 0 and len(flat.X) == 32 and flat.fidelity_names == ["tokens"]
    np.testing.assert_array_equal(np.sort(flat.groups), np.arange(32))


def test_surrogate_inputs_drop_a_fidelity_equal_to_the_target_everywhere():
    W, Y, tokens, c = _two_level()
    one = RunTable.from_arrays(W, Y, fidelity=np.full(12, 4e6))
    inp = surrogate_inputs(one)
    assert inp.fidelity_columns is None and inp.target_fidelity is None and inp.X.shape == (12, 3)
    obj = surrogate_inputs(one, {"target_0": 3, "target_1": 1}, per_target=False)
    assert obj.target_names == ["objective"]
    np.testing.assert_allclose(np.sort(obj.Y[:, 0]), np.sort(0.75 * Y[:, 0] + 0.25 * Y[:, 1]))
    single = surrogate_inputs(one, "target_1")
    assert single.target_names == ["target_1"] and single.Y.shape == (12, 1)


def test_surrogate_inputs_do_not_depend_on_row_order():
    t = _curve_records()
    perm = np.random.default_rng(1).permutation(len(t))
    a, b = surrogate_inputs(t, curves=True), surrogate_inputs(t.take(perm), curves=True)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)


def test_curve_models_fit_on_the_curves_others_on_final_losses():
    t = _curve_records()
    law = fit_model("mixing_law", t, params={"n_restarts": 2})
    assert law.inputs.curve_rows == 72 and law.n_fit == 80
    trees = fit_model("lightgbm", t, params={"n_estimators": 50, "min_child_samples": 3})
    assert trees.inputs.curve_rows == 0 and trees.n_fit == 32
    # the law predicts the target-fidelity loss of the known law (the cheap curves tell how far off they are)
    W = np.random.default_rng(5).dirichlet(np.ones(3), 50)
    np.testing.assert_allclose(law.predict(W)[0], 2.0 + np.exp(W @ TLAW), atol=0.05)


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
    assert {r["surrogate"] for r in cv} == {"linear", "mixing_law", "stack"} and sum(r["chosen"] for r in cv) == 1


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


def test_level_costs_are_estimated_from_observed_costs_in_their_own_unit():
    # prior costs in FLOPs (1, 4, 16); observed costs in seconds, only at the two cheaper levels
    t = RunTable.from_arrays(np.full((4, 2), 0.5), [[1.0], [1.1], [1.2], [1.3]], fidelity=[1, 1, 4, 4],
                             cost=[3.0, 5.0, 10.0, 14.0], domains=["a", "b"], target_names=["l"])
    t = RunTable(weights=t.weights, targets=t.targets, domains=t.domains, target_names=t.target_names,
                 fidelity=t.fidelity, fidelity_names=t.fidelity_names, levels=[[1.0], [4.0], [16.0]],
                 level_costs=[1.0, 4.0, 16.0], cost=t.cost)
    est = t.estimated_level_costs()
    # observed means where runs exist; the unseen level scaled by the median observed/prior ratio (4, 3)
    assert est.tolist() == pytest.approx([4.0, 12.0, 16.0 * 3.5])
    assert RunTable.empty(["a", "b"], ["l"], fidelity_names=["f"], levels=[[1.0], [4.0]],
                          level_costs=[1.0, 4.0]).estimated_level_costs().tolist() == [1.0, 4.0]
