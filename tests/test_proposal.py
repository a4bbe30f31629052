"""The proposer: the optimum of a known law is found; constraints hold exactly; finite sets; the schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.feasible import Constraints, FeasibleSet, kl_divergence
from mixopt.proposal import Proposal, propose
from mixopt.runs import RunTable
from mixopt.surrogates import fit_model

DOMAINS = ["web", "code", "books", "papers", "wiki"]
T = np.array([0.5, -2.0, 0.8, 1.0, 0.2])  # loss falls with more code, then wiki, then web


def law(W) -> np.ndarray:
    return 2.0 + np.exp(np.atleast_2d(W) @ T)


def _table(n: int, seed: int = 0) -> RunTable:
    W = np.random.default_rng(seed).dirichlet(np.ones(5), n)
    return RunTable.from_arrays(W, law(W), domains=DOMAINS, target_names=["loss"])


@pytest.fixture(scope="module")
def law_model():
    return fit_model("mixing_law", _table(150), params={"n_restarts": 2})


@pytest.fixture(scope="module")
def trees():
    return fit_model("lightgbm", _table(150), params={"n_estimators": 200, "learning_rate": 0.05})


@pytest.mark.parametrize("method", ["auto", "sample_topk", "slsqp"])
def test_unconstrained_optimum_of_a_known_law(law_model, method):
    p = propose(law_model, FeasibleSet.simplex(DOMAINS), method=method, seed=0, n_candidates=4000)
    w = p.vector(DOMAINS)
    assert abs(w.sum() - 1) < 1e-9 and (w >= 0).all()
    # the law is minimised by all code; an average of the top samples gets close, SLSQP gets there
    assert np.argmax(w) == 1 and w[1] > (0.95 if method != "sample_topk" else 0.6)
    assert p.predicted == pytest.approx(law(w)[0], abs=0.02)
    assert p.rule == "predicted" and p.surrogate == "mixing_law" and p.std is None
    assert p.method == method if method != "auto" else p.method in ("sample_topk", "slsqp")


def test_auto_is_no_worse_than_either_method(law_model):
    fs = FeasibleSet.simplex(DOMAINS)
    preds = {m: propose(law_model, fs, method=m, seed=0, n_candidates=2000).predicted
             for m in ("auto", "sample_topk", "slsqp")}
    assert preds["auto"] <= min(preds["sample_topk"], preds["slsqp"]) + 1e-9


CAPPED = Constraints(min_weight={"wiki": 0.05, "books": 0.1}, max_weight=0.6, max_epochs=2.0, target_tokens=1e9,
                     domain_tokens={"web": 5e8, "code": 1e8, "books": 4e8, "papers": 3e8, "wiki": 2e8})


@pytest.mark.parametrize("surrogate", ["law_model", "trees"])
def test_min_max_and_repetition_caps_hold_exactly(surrogate, request):
    model = request.getfixturevalue(surrogate)
    p = propose(model, CAPPED.resolve(DOMAINS), seed=1, n_candidates=3000)
    w = p.vector(DOMAINS)
    caps = np.array([0.6, 0.2, 0.6, 0.6, 0.4])  # min(max_weight, 2 epochs * tokens / 1e9)
    lo = np.array([0, 0, 0.1, 0, 0.05])
    assert abs(w.sum() - 1) < 1e-9
    assert (w <= caps + 1e-12).all() and (w >= lo - 1e-12).all()
    if surrogate == "law_model":
        # the law's constrained optimum: code to its cap, the min weights, then wiki (next lowest T) to its
        # cap, the rest to web
        assert w == pytest.approx([0.3, 0.2, 0.1, 0.0, 0.4], abs=0.01)
        assert "repetition_cap[code]" in p.active_constraints and "min_weight[books]" in p.active_constraints
    else:  # trees: an average of the best candidates, still pushed towards code
        assert w[1] > 0.15


def test_kl_to_prior_holds(law_model):
    prior = np.array([0.4, 0.05, 0.25, 0.2, 0.1])
    fs = Constraints(kl_to_prior=0.1).resolve(DOMAINS, prior)
    p = propose(law_model, fs, seed=0, n_candidates=3000)
    w = p.vector(DOMAINS)
    assert kl_divergence(w, prior) <= 0.1 + 1e-9
    assert w[1] > prior[1]  # moved towards code as far as the KL budget allows
    assert "kl_to_prior" in p.active_constraints and p.kl_to_prior == pytest.approx(0.1, abs=1e-3)
    # no feasible mixture of a fresh design is predicted better than the proposal
    X = fs.sample(2000, seed=7, distinct=False)
    assert p.predicted <= law_model.predict(X)[0].min() + 1e-6


def test_finite_set_returns_the_allowed_point_with_the_lowest_prediction(law_model):
    points = np.random.default_rng(3).dirichlet(np.ones(5), 30)
    fs = Constraints(max_weight=0.7).resolve(DOMAINS).restrict(points)
    p = propose(law_model, fs, seed=0)
    allowed = fs.points
    pred = law_model.predict(allowed)[0]
    assert p.method == "finite"
    np.testing.assert_array_equal(p.vector(DOMAINS), allowed[int(np.argmin(pred))])
    assert p.predicted == pytest.approx(pred.min())
    assert law(p.vector(DOMAINS))[0] == pytest.approx(law(allowed).min(), abs=0.01)  # the truly best one
    assert p.vector(DOMAINS).max() <= 0.7  # points above the max weight were never allowed


def test_proposal_json_round_trip_and_objective_weights():
    W = np.random.default_rng(1).dirichlet(np.ones(5), 60)
    Y = np.column_stack([law(W), 3.0 + np.exp(W @ -T)])
    table = RunTable.from_arrays(W, Y, domains=DOMAINS, target_names=["loss_a", "loss_b"])
    model = fit_model("auto", table, {"loss_a": 3, "loss_b": 1},
                      params={"candidates": ["linear", "mixing_law"], "n_folds": 3})
    p = propose(model, FeasibleSet.simplex(DOMAINS), seed=0, n_candidates=1000)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["surrogate"] == f"auto->{model.surrogate.chosen_}" and "CV" in d["reason"]
    assert [r["surrogate"] for r in d["cv_table"]] == ["linear", "mixing_law", "stack"]
    assert set(d["predicted_targets"]) == {"loss_a", "loss_b"}
    pt = d["predicted_targets"]
    assert d["predicted"] == pytest.approx(0.75 * pt["loss_a"] + 0.25 * pt["loss_b"])
    back = Proposal.from_dict(d | {"not_a_field": 1})  # unknown keys (a newer writer) are ignored
    assert back.to_dict() == d
    np.testing.assert_allclose(back.vector(DOMAINS), p.vector(DOMAINS))
    np.testing.assert_allclose(back.vector(DOMAINS[::-1]), p.vector(DOMAINS)[::-1])


def test_gp_proposal_reports_uncertainty(trees):
    gp = fit_model("gp", _table(40), params={"max_iter": 30})
    p = propose(gp, FeasibleSet.simplex(DOMAINS), seed=0, n_candidates=500, n_starts=2)
    assert p.std is not None and np.isfinite(p.std) and p.std > 0
    assert p.std == pytest.approx(float(gp.predict(p.vector(DOMAINS)[None, :])[1][0]), rel=1e-6)
    # a model without an uncertainty model reports none
    assert propose(trees, FeasibleSet.simplex(DOMAINS), seed=0, n_candidates=200).std is None


def test_unknown_method_is_a_one_line_error(law_model):
    with pytest.raises(MixoptError, match="unknown method 'magic'") as e:
        propose(law_model, FeasibleSet.simplex(DOMAINS), method="magic")
    assert "\n" not in str(e.value)
