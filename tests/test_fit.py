"""`fit_table` and `mixopt fit`: a model of past runs, its CV table, and the proposal it leads to."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mixopt.cli import main
from mixopt.errors import MixoptError
from mixopt.feasible import Constraints
from mixopt.fit import fit_table
from mixopt.proposal import Proposal
from mixopt.runs import RunTable

DOMAINS = ["a", "b", "c", "d"]
TARGETS = ["loss_x", "loss_y"]
# A linear law per target: loss_x is lowest on all-"a", loss_y on all-"d"; their mean (-0.1, 0, 0.5, -0.15)
# is lowest on all-"d", and with at most 0.6 per domain at 0.6 "d" + 0.4 "a".
BETA = np.array([[-0.6, 0.0, 0.5, 0.4], [0.4, 0.0, 0.5, -0.7]])
# A mixing law per target (c + k exp(t . w)); the mean of the two is lowest inside an edge of the simplex.
LAW_C, LAW_K = np.array([2.0, 1.8]), np.array([1.0, 0.7])
LAW_T = np.array([[0.5, -1.0, 1.5, 0.2], [-0.3, 0.8, 1.0, -0.6]])


def _mixtures(n, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), n)


def _linear(W):
    return 3.0 + np.atleast_2d(W) @ BETA.T


def _law(W):
    return LAW_C + LAW_K * np.exp(np.atleast_2d(W) @ LAW_T.T)


def _table(law, n=40, seed=0):
    W = _mixtures(n, seed)
    return RunTable.from_arrays(W, law(W), domains=DOMAINS, target_names=TARGETS)


def _law_optimum():
    """The true best mixture of the mean mixing law, by brute force over dense samples of the simplex."""
    G = np.random.default_rng(1).dirichlet(np.full(len(DOMAINS), 0.3), 200_000)
    v = _law(G).mean(1)
    return G[np.argmin(v)], float(v.min())


def test_linear_law_cv_table_and_proposal_at_the_known_optimum():
    t = _table(_linear)
    res = fit_table(t, surrogate="linear", folds=3, propose=True)
    [row] = res.cv_table
    assert row["surrogate"] == "linear" and row["chosen"] and row["spearman"] > 0.99 and row["mae"] < 1e-6
    p = res.proposal
    assert p.rule == "predicted" and p.strategy == "surrogate" and p.surrogate == "linear"
    assert np.allclose(p.vector(DOMAINS), [0, 0, 0, 1], atol=1e-6)
    assert p.predicted == pytest.approx(_linear(p.vector(DOMAINS)).mean(), abs=1e-6)
    best = int(np.argmin(t.objective()))
    assert p.baselines["best_run"]["run_id"] == t.run_ids[best]
    assert p.baselines["best_run"]["observed"] == pytest.approx(t.objective()[best])
    # another objective, another optimum
    px = fit_table(t, surrogate="linear", folds=0, objective="loss_x", propose=True).proposal
    assert np.allclose(px.vector(DOMAINS), [1, 0, 0, 0], atol=1e-6)


def test_auto_picks_the_true_law_and_proposes_near_its_optimum():
    t = _table(_law, n=60)
    res = fit_table(t, surrogate="auto", params={"candidates": ["linear", "mixing_law"]}, folds=3, propose=True)
    assert {r["surrogate"] for r in res.cv_table} == {"linear", "mixing_law", "stack"}
    assert [r["surrogate"] for r in res.cv_table if r["chosen"]] == ["mixing_law"]
    assert res.model.describe() == "auto->mixing_law" and res.proposal.surrogate == "auto->mixing_law"
    w = res.proposal.vector(DOMAINS)
    w_star, best = _law_optimum()
    assert np.abs(w - w_star).max() < 0.02
    assert _law(w).mean() <= best + 1e-4
    assert _law(w).mean() < t.objective().min()  # better than every run


def test_proposal_respects_max_weight():
    res = fit_table(_table(_linear), surrogate="linear", folds=0, propose=True,
                    constraints=Constraints(max_weight=0.6))
    w = res.proposal.vector(DOMAINS)
    assert w.max() <= 0.6 + 1e-12 and w.sum() == pytest.approx(1.0)
    assert np.allclose(w, [0.4, 0, 0, 0.6], atol=1e-6)
    assert res.proposal.active_constraints == ["max_weight[d]"]


@pytest.mark.parametrize("surrogate, method", [("lightgbm", "slsqp"), ("linear", "sample_topk")])
def test_the_proposers_method_is_honoured(surrogate, method):
    # each asks for the method "auto" would not choose (sample_topk for trees, slsqp for smooth models)
    params = {"n_estimators": 50, "min_child_samples": 3} if surrogate == "lightgbm" else None
    res = fit_table(_table(_linear), surrogate=surrogate, params=params, folds=0, propose=True, method=method)
    assert res.proposal.method == method
    auto = fit_table(_table(_linear), surrogate=surrogate, params=params, folds=0, propose=True)
    assert auto.proposal.method != method


def test_no_cv_table_without_folds_and_no_proposal_unless_asked():
    res = fit_table(_table(_linear), surrogate="linear", folds=0)
    assert res.cv_table == [] and res.proposal is None
    W = _mixtures(5)
    assert np.allclose(res.model.predict(W)[0], _linear(W).mean(1), atol=1e-6)


@pytest.mark.parametrize(
    "weights, targets",
    [(_mixtures(1), [[3.0, 3.1]]),  # one run
     (_mixtures(3), [[3.0, 3.0]] * 3)],  # runs that all score the same
)
def test_too_few_runs_is_a_one_line_error(weights, targets):
    t = RunTable.from_arrays(weights, targets, domains=DOMAINS, target_names=TARGETS)
    with pytest.raises(MixoptError, match="at least 2 successful runs") as e:
        fit_table(t, surrogate="linear", propose=True)
    assert "\n" not in str(e.value)


def _csv(tmp_path, W, Y):
    path = tmp_path / "runs.csv"
    df = pd.DataFrame(W, columns=[f"w_{d}" for d in DOMAINS]).assign(**dict(zip(TARGETS, Y.T, strict=True)))
    df.to_csv(path, index=False)
    return path


def test_cli_fit_writes_cv_fit_and_a_proposal(tmp_path, capsys):
    W = _mixtures(40)
    out = tmp_path / "out"
    rc = main(["fit", str(_csv(tmp_path, W, _linear(W))), "--weights", "w_", "--targets", "loss_",
               "--surrogate", "linear", "--folds", "3", "--propose", "--max-weight", "0.6", "--out", str(out)])
    assert rc == 0 and "proposal (linear" in capsys.readouterr().out
    cv = json.loads((out / "cv.json").read_text())
    assert [r["surrogate"] for r in cv] == ["linear"] and cv[0]["chosen"]
    fit = json.loads((out / "fit.json").read_text())
    assert fit["chosen"] == "linear" and fit["table"]["runs"] == 40 and fit["table"]["domains"] == DOMAINS
    assert fit["objective_weights"] == {"loss_x": 0.5, "loss_y": 0.5}
    prop = json.loads((out / "proposal.json").read_text())
    assert prop == Proposal.from_dict(prop).to_dict()  # the proposal schema, nothing else
    assert prop["rule"] == "predicted" and prop["strategy"] == "surrogate"
    assert set(prop["weights"]) == set(DOMAINS)
    assert np.allclose([prop["weights"][d] for d in DOMAINS], [0.4, 0, 0, 0.6], atol=1e-6)


def test_cli_fit_with_too_few_runs_fails_in_one_line_and_writes_nothing(tmp_path, capsys):
    W = _mixtures(1)
    out = tmp_path / "out"
    rc = main(["fit", str(_csv(tmp_path, W, _linear(W))), "--weights", "w_", "--targets", "loss_",
               "--surrogate", "linear", "--propose", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: fit: ") and "at least 2 successful runs" in err
    assert err.count("\n") == 1 and not out.exists()


def test_cli_fit_on_repeated_mixtures_fits_the_gp_with_their_noise(tmp_path, capsys):
    W = np.repeat(_mixtures(8, seed=3), 3, axis=0)  # every mixture three times (identical weight rows)
    rng = np.random.default_rng(0)
    Y = _law(W) + (0.01 + 0.2 * W[:, :1]) * rng.standard_normal((len(W), 1))  # noisier with more "a"
    out = tmp_path / "out"
    rc = main(["fit", str(_csv(tmp_path, W, Y)), "--weights", "w_", "--targets", "loss_", "--surrogate", "gp",
               "--folds", "0", "--propose", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "noise: run-to-run std" in text and "8 repeated mixture(s)" in text
    fit = json.loads((out / "fit.json").read_text())
    assert fit["noise"]["repeated_mixtures"] == 8 and fit["noise"]["fitted_with_noise"]
    assert 0.01 < fit["noise"]["pooled_std"]["objective"] < 0.2
    prop = json.loads((out / "proposal.json").read_text())
    assert prop["trust"]["noise"]["n_groups"] == 8
    # a table without repeats: no noise, the GP learns its own
    res = fit_table(_table(_law, n=24), surrogate="gp", folds=0)
    assert res.to_dict()["noise"] is None and res.model.y_var is None
