"""The proposer: constraints always hold exactly; the optimum of a known law is found; BO batch picks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixopt.constraints import kl_divergence
from mixopt.errors import MixoptError
from mixopt.propose import Constraints, Proposal, propose, select_batch
from mixopt.surrogates import make_surrogate

DOMAINS = ["web", "code", "books", "papers", "wiki"]
T = np.array([[0.5, -2.0, 0.8, 1.0, 0.2]])  # loss falls with more code


@pytest.fixture(scope="module")
def law():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(5), 150)
    y = 2.0 + np.exp(X @ T.T)[:, 0]
    return make_surrogate("mixing_law", random_state=0, n_restarts=2).fit(X, y)


@pytest.fixture(scope="module")
def trees():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(5), 150)
    y = 2.0 + np.exp(X @ T.T)[:, 0]
    return make_surrogate("lightgbm", random_state=0, n_estimators=200, learning_rate=0.05).fit(X, y)


def _w(p: Proposal) -> np.ndarray:
    return np.array([p.weights[d] for d in DOMAINS])


@pytest.mark.parametrize("method", ["auto", "sample_topk", "slsqp"])
def test_unconstrained_optimum_of_a_known_law(law, method):
    p = propose(law, DOMAINS, method=method, seed=0, n_candidates=4000)
    w = _w(p)
    assert abs(w.sum() - 1) < 1e-9 and (w >= 0).all()
    assert np.argmax(w) == 1 and w[1] > (0.95 if method != "sample_topk" else 0.6)
    assert p.predicted == pytest.approx(2.0 + np.exp(w @ T[0]), abs=0.02)


@pytest.mark.parametrize("surrogate", ["law", "trees"])
def test_min_max_and_repetition_caps_hold_exactly(surrogate, request):
    s = request.getfixturevalue(surrogate)
    cons = Constraints(min_weight={"wiki": 0.05, "books": 0.1}, max_weight=0.6, max_epochs=2.0,
                       target_tokens=1e9, domain_tokens={"web": 5e8, "code": 1e8, "books": 4e8, "papers": 3e8,
                                                         "wiki": 2e8})
    p = propose(s, DOMAINS, constraints=cons, seed=1, n_candidates=3000)
    w = _w(p)
    caps = np.array([0.6, 0.2, 0.6, 0.6, 0.4])  # min(max_weight, 2 epochs * tokens / 1e9)
    lo = np.array([0, 0, 0.1, 0, 0.05])
    assert abs(w.sum() - 1) < 1e-9
    assert (w <= caps + 1e-12).all() and (w >= lo - 1e-12).all()
    if surrogate == "law":  # smooth law -> SLSQP lands on the cap; trees -> an average of top candidates
        assert w[1] == pytest.approx(0.2, abs=1e-6)  # code is wanted but capped by its repetition limit
        assert "repetition_cap[code]" in p.active_constraints
    else:
        assert w[1] > 0.15


def test_kl_to_prior_holds(law):
    prior = np.array([0.4, 0.05, 0.25, 0.2, 0.1])
    p = propose(law, DOMAINS, constraints=Constraints(kl_to_prior=0.1), prior=prior, seed=0, n_candidates=3000)
    w = _w(p)
    assert kl_divergence(w, prior) <= 0.1 + 1e-9
    assert w[1] > prior[1]  # moved towards code as far as the KL budget allows
    assert "kl_to_prior" in p.active_constraints and p.kl_to_prior == pytest.approx(0.1, abs=1e-3)


def test_infeasible_constraints_raise_one_line_errors(law):
    for cons, msg in [
        (Constraints(min_weight=0.3), "min weights sum"),
        (Constraints(max_weight=0.1), "sum to 0.5 < 1"),
        (Constraints(min_weight={"code": 0.5}, max_weight={"code": 0.2}), "'code' needs weight >= 0.5"),
        (Constraints(min_weight={"mars": 0.1}), "unknown domain"),
        (Constraints(max_epochs=1, target_tokens=1e9, domain_tokens={d: 1e8 for d in DOMAINS}), "< 1"),
    ]:
        with pytest.raises(MixoptError, match=msg) as e:
            propose(law, DOMAINS, constraints=cons, n_candidates=100)
        assert "\n" not in str(e.value)
    with pytest.raises(MixoptError, match="KL"):
        propose(law, DOMAINS, constraints=Constraints(kl_to_prior=0.01, min_weight={"code": 0.5}),
                prior=np.full(5, 0.2), n_candidates=100)


def test_proposal_is_json_and_names_its_surrogate(law):
    auto = make_surrogate("auto", candidates=["linear", "mixing_law"], n_folds=3, random_state=0)
    rng = np.random.default_rng(1)
    X = rng.dirichlet(np.ones(5), 60)
    Y = np.column_stack([2.0 + np.exp(X @ T[0]), 3.0 + np.exp(X @ -T[0])])
    auto.fit(X, Y)
    p = propose(auto, DOMAINS, objective_weights=[0.5, 0.5], seed=0, n_candidates=1000,
                target_names=["loss_a", "loss_b"])
    d = json.loads(json.dumps(p.to_dict()))
    assert d["surrogate"] == f"auto->{auto.chosen_}" and d["cv_table"] == auto.cv_table_
    assert set(d["predicted_targets"]) == {"loss_a", "loss_b"}
    assert d["predicted"] == pytest.approx(np.mean(list(d["predicted_targets"].values())))


def test_gp_proposal_reports_uncertainty():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(5), 40)
    gp = make_surrogate("gp", random_state=0, max_iter=30).fit(X, 2.0 + np.exp(X @ T[0]))
    p = propose(gp, DOMAINS, seed=0, n_candidates=500, n_starts=2)
    assert p.std is not None and p.std >= 0


def test_select_batch_single_fidelity():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(5), 25)
    y = 2.0 + np.exp(X @ T[0])
    cands = rng.dirichlet(np.ones(5), 300)
    picks = select_batch(X, y, cands, q=4, seed=0)
    assert len(picks) == 4 and len({i for i, _ in picks}) == 4
    assert all(0 <= i < 300 and f == 0 for i, f in picks)
    # the picks lean towards the region the data says is good (more code than a random candidate)
    assert np.mean([cands[i, 1] for i, _ in picks]) > cands[:, 1].mean()
    assert picks == select_batch(X, y, cands, q=4, seed=0)


def test_select_batch_multi_fidelity_is_cost_aware():
    rng = np.random.default_rng(0)
    fids = [1e6, 4e6, 1.6e7]
    X = rng.dirichlet(np.ones(5), 30)
    fo = rng.choice(fids, 30)
    y = 2.0 + np.exp(X @ T[0]) + 300.0 / np.sqrt(fo)
    cands = rng.dirichlet(np.ones(5), 200)
    picks = select_batch(X, y, cands, q=3, fidelity_obs=fo, fidelity_values=fids, costs=[1, 4, 16], seed=0)
    assert len(picks) == 3 and len({i for i, _ in picks}) == 3
    assert all(0 <= i < 200 and 0 <= f < 3 for i, f in picks)
    # when the higher fidelities cost orders of magnitude more, the cheapest one is chosen
    cheap = select_batch(X, y, cands, q=2, fidelity_obs=fo, fidelity_values=fids, costs=[1, 1e3, 1e6], seed=0)
    assert [f for _, f in cheap] == [0, 0]
    with pytest.raises(MixoptError, match="fidelity_obs"):
        select_batch(X, y, cands, q=2, fidelity_values=fids)
