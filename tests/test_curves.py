"""Per-domain learning curves of a mixture from a run table's eval curves (what a search gives the online mixer)."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.curves import curve_laws, proposal_curves
from mixopt.runs import RunTable

DOMAINS = ["web", "code", "math"]
# the true law per domain: L(r, n) = (r + 0.02)^-alpha * (B n^-beta + C)
TRUE = {"web": (0.05, 40.0, 0.30, 2.5), "code": (0.15, 25.0, 0.40, 1.2), "math": (0.10, 60.0, 0.25, 1.8)}
TOKENS = 1e6


def true_loss(d, r, n):
    a, b, be, c = TRUE[d]
    return (r + 0.02) ** -a * (b * n**-be + c)


def records(n_runs=10, seed=0, level=1, shift=0.0, noise=0.002, curves=True):
    rng = np.random.default_rng(seed)
    out = []
    for i, w in enumerate(rng.dirichlet(np.ones(3), n_runs)):
        n = np.geomspace(TOKENS / 30, TOKENS, 6)
        loss = {d: true_loss(d, w[j], n) + shift + noise * rng.standard_normal(6) for j, d in enumerate(DOMAINS)}
        rec = {"run_id": f"l{level}-{i}", "weights": dict(zip(DOMAINS, w.tolist(), strict=True)), "level": level,
               "final_loss": {d: float(v[-1]) for d, v in loss.items()}}
        if curves:
            rec |= {"tokens_seen": n.tolist(), "val_loss": {d: v.tolist() for d, v in loss.items()}}
        out.append(rec)
    return out


def table(recs):
    return RunTable.from_records(recs, domains=DOMAINS, fidelity=["tokens", "n_params"],
                                 levels=[[TOKENS, 1e6], [TOKENS, 1e7]], quantity="tokens")


def test_curves_follow_the_true_law_of_the_proposed_mixture():
    w = np.array([0.2, 0.5, 0.3])
    laws = curve_laws(table(records()), w)
    assert set(laws) == set(DOMAINS)
    n = np.geomspace(TOKENS / 30, TOKENS, 20)
    for j, d in enumerate(DOMAINS):
        E, B, beta = laws[d]
        got, want = E + B * n**-beta, true_loss(d, w[j], n)
        assert np.max(np.abs(got - want)) < 0.005  # nats (run noise 0.002), over the span of the eval curves
    # a domain given more weight gets the lower curve
    more_code = curve_laws(table(records()), np.array([0.1, 0.8, 0.1]))
    assert more_code["code"][0] + more_code["code"][1] * TOKENS ** -more_code["code"][2] < \
        laws["code"][0] + laws["code"][1] * TOKENS ** -laws["code"][2]


def test_anchor_sets_the_end_point_and_keeps_the_shape():
    t, w = table(records()), np.array([0.2, 0.5, 0.3])
    free = curve_laws(t, w)
    pinned = curve_laws(t, w, anchor={"web": 2.0, "code": 1.0}, tokens=TOKENS)
    for d, end in (("web", 2.0), ("code", 1.0)):
        E, B, beta = pinned[d]
        assert E + B * TOKENS**-beta == pytest.approx(end, abs=1e-12)
        assert free[d][1] == B and beta == free[d][2]  # only E moves
    assert pinned["math"] == free["math"]  # not in the anchor: the fitted end point
    with pytest.raises(ValueError, match="tokens"):
        curve_laws(t, w, anchor={"web": 2.0})


def test_only_runs_at_the_target_model_size_shape_the_curves():
    w = np.array([0.2, 0.5, 0.3])
    target_only = curve_laws(table(records()), w)
    small = records(seed=1, level=0, shift=1.0)  # a smaller model, 1 nat worse everywhere
    mixed = curve_laws(table(records() + small), w)
    assert mixed == target_only


def test_no_curves_without_enough_runs_with_eval_curves():
    w = np.array([0.2, 0.5, 0.3])
    assert curve_laws(table(records(n_runs=2)), w) is None
    assert curve_laws(table(records(curves=False)), w) is None
    assert curve_laws(table(records(level=0)), w) is None  # none at the target size


def test_a_proposal_that_was_run_ends_at_its_observed_losses():
    recs = records()
    t = table(recs)
    ran = t.weights[4]  # the proposal is a mixture the search ran at the target fidelity
    laws = proposal_curves(t, ran, predicted={"web": 9.0}, tokens=TOKENS)
    for j, d in enumerate(DOMAINS):
        E, B, beta = laws[d]
        assert E + B * TOKENS**-beta == pytest.approx(t.targets[4, j], abs=1e-12)
    new = np.array([0.3, 0.3, 0.4])  # never run: the prediction where there is one, else the law's own end
    laws = proposal_curves(t, new, predicted={"web": 9.0}, tokens=TOKENS)
    free = curve_laws(t, new)
    assert laws["web"][0] + laws["web"][1] * TOKENS ** -laws["web"][2] == pytest.approx(9.0, abs=1e-12)
    assert laws["code"] == free["code"]
    assert proposal_curves(t, new, predicted=None, tokens=TOKENS) == free
