"""The feasible set: RegMix's design (on the simplex, within bounds, distinct, seeded), projection, checks,
KL to the prior, and finite sets of allowed mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.feasible import Constraints, FeasibleSet, kl_divergence

DOMAINS = ["web", "code", "books", "papers", "wiki"]
PRIOR = np.array([0.55, 0.25, 0.1, 0.06, 0.04])


def _simplex(prior=PRIOR) -> FeasibleSet:
    return FeasibleSet.simplex(DOMAINS, prior=prior)


# ---------------------------------------------------------------------------------------------- sampling
def test_rows_on_simplex_and_distinct():
    X = _simplex().sample(300, seed=0)
    assert X.shape == (300, 5)
    assert np.all(X >= 0) and np.allclose(X.sum(1), 1.0)
    assert len({r.tobytes() for r in np.round(X, 3)}) == 300


def test_same_seed_same_mixtures_other_seed_other_mixtures():
    fs = _simplex()
    a, b, c = fs.sample(50, seed=3), fs.sample(50, seed=3), fs.sample(50, seed=4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_design_centred_on_sharpened_prior():
    # Dirichlet(c k base) has mean base = prior**t / sum(prior**t): the prior at t=1, uniform at t=0
    fs = _simplex()
    m1 = fs.sample(2000, seed=0, temperature=1.0, concentrations=(5.0,)).mean(0)
    m0 = fs.sample(2000, seed=0, temperature=0.0, concentrations=(5.0,)).mean(0)
    mh = fs.sample(2000, seed=0, temperature=0.5, concentrations=(5.0,)).mean(0)
    assert np.abs(m1 - PRIOR).max() < 0.02
    assert np.abs(m0 - 0.2).max() < 0.02
    assert np.abs(mh - np.sqrt(PRIOR) / np.sqrt(PRIOR).sum()).max() < 0.02


def test_small_concentrations_give_sparser_mixtures():
    fs = _simplex()
    sparse = fs.sample(500, seed=0, concentrations=(0.1,))
    dense = fs.sample(500, seed=0, concentrations=(5.0,))
    assert (sparse < 0.01).mean() > 2 * (dense < 0.01).mean()
    # a range of concentrations covers both regimes
    both = fs.sample(500, seed=0, concentrations=(0.1, 5.0))
    assert (sparse < 0.01).mean() > (both < 0.01).mean() > (dense < 0.01).mean()


def test_zero_prior_domain_is_rarely_sampled():
    X = _simplex(prior=[0.5, 0.3, 0.2, 0.0, 0.0]).sample(300, seed=0, concentrations=(5.0,))
    assert np.allclose(X.sum(1), 1.0) and (X >= 0).all()
    assert X[:, 3:].mean() < 0.01


def test_weight_bounds_respected():
    fs = Constraints(min_weight=0.05, max_weight=[0.4, 0.5, 0.5, 0.5, 0.5]).resolve(DOMAINS, PRIOR)
    X = fs.sample(200, seed=1)
    assert X.min() >= 0.05 - 1e-9
    assert X[:, 0].max() <= 0.4 + 1e-9 and X[:, 1:].max() <= 0.5 + 1e-9
    assert np.allclose(X.sum(1), 1.0)
    assert all(fs.is_feasible(w) for w in X)


def test_per_domain_bounds_by_name():
    fs = Constraints(min_weight={"wiki": 0.1}, max_weight={"web": 0.3}).resolve(DOMAINS, PRIOR)
    X = fs.sample(200, seed=0)
    assert X[:, 4].min() >= 0.1 - 1e-9 and X[:, 0].max() <= 0.3 + 1e-9
    assert X[:, 1:4].min() >= -1e-12  # other domains keep the default bounds [0, 1]
    assert X[:, 1:4].max() > 0.5


def test_repetition_cap_respected():
    tokens = dict(zip(DOMAINS, [1e9, 1e9, 1e7, 1e7, 1e7], strict=True))  # three small domains
    fs = Constraints(max_epochs=2.0, target_tokens=1e8, domain_tokens=tokens).resolve(DOMAINS, PRIOR)
    X = fs.sample(200, seed=2)
    epochs = X * 1e8 / np.array(list(tokens.values()))
    assert epochs.max() <= 2.0 + 1e-6
    assert np.allclose(X.sum(1), 1.0)
    # the cap is 2 epochs * 1e7 / 1e8 = 0.2 for the small domains and names itself when it binds
    assert fs.hi[2:] == pytest.approx([0.2, 0.2, 0.2])
    assert "repetition_cap[books]" in fs.active(np.array([0.3, 0.3, 0.2, 0.1, 0.1]))


def test_kl_bound_respected_by_sampled_mixtures():
    prior = np.array([0.4, 0.05, 0.25, 0.2, 0.1])
    fs = Constraints(kl_to_prior=0.1).resolve(DOMAINS, prior)
    X = fs.sample(300, seed=0, concentrations=(0.1, 5.0))
    kls = np.array([kl_divergence(w, prior) for w in X])
    assert kls.max() <= 0.1 + 1e-9
    assert np.allclose(X.sum(1), 1.0) and (X >= 0).all()
    # the bound binds: the wide design pushes many draws onto its boundary, where `active` reports it
    assert (kls > 0.099).mean() > 0.2
    assert "kl_to_prior" in fs.active(X[int(np.argmax(kls))])


def test_kl_bound_forbids_domains_without_prior_mass():
    fs = Constraints(kl_to_prior=0.5).resolve(["a", "b", "c"], prior=[0.5, 0.5, 0.0])
    X = fs.sample(100, seed=0)
    assert np.all(X[:, 2] == 0)
    assert not fs.is_feasible(np.array([0.4, 0.4, 0.2]))


def test_too_tight_bounds_cannot_give_enough_distinct_mixtures():
    fs = Constraints(min_weight=0.5).resolve(["a", "b"], [0.5, 0.5])  # only (0.5, 0.5) is feasible
    with pytest.raises(MixoptError, match="distinct") as e:
        fs.sample(5, seed=0, max_draws=200)
    assert "\n" not in str(e.value)
    # without de-duplication the one feasible mixture may be drawn many times
    assert np.allclose(fs.sample(5, seed=0, distinct=False), 0.5)


def test_a_candidate_pool_of_two_domains_is_every_distinct_mixture_there_is():
    fs = FeasibleSet.simplex(["a", "b"])  # 1,001 distinct mixtures on the 1e-3 grid
    with pytest.raises(MixoptError, match="distinct"):
        fs.sample(2048, seed=0)
    pool = fs.sample(2048, seed=0, at_most=True)
    assert 900 < len(pool) <= 1001 and len({tuple(np.round(w, 3)) for w in pool}) == len(pool)
    assert np.allclose(pool.sum(axis=1), 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=-1), "temperature"),
        (dict(concentrations=(0.0, 1.0)), "concentrations"),
        (dict(concentrations=(1.0, 2.0, 3.0)), "concentrations"),
    ],
)
def test_bad_sampling_arguments_raise(kwargs, match):
    with pytest.raises(MixoptError, match=match) as e:
        _simplex().sample(10, seed=0, **kwargs)
    assert "\n" not in str(e.value)


def test_non_positive_sample_size_raises():
    with pytest.raises(MixoptError, match="positive"):
        _simplex().sample(0, seed=0)


# -------------------------------------------------------------------------------------- infeasible input
@pytest.mark.parametrize(
    "cons, match",
    [
        (Constraints(min_weight=0.3), "min weights sum to 1.5 > 1"),
        (Constraints(max_weight=0.1), "sum to 0.5 < 1"),
        (Constraints(min_weight={"code": 0.5}, max_weight={"code": 0.2}), "'code' needs weight >= 0.5"),
        (Constraints(min_weight={"mars": 0.1}), r"unknown domain\(s\) \['mars'\]"),
        (Constraints(max_weight=[0.5, 0.5]), "expected one number or 5 values"),
        (Constraints(min_weight=-0.1), ">= 0"),
        (Constraints(max_epochs=1, target_tokens=1e9, domain_tokens={d: 1e8 for d in DOMAINS}), "< 1"),
        (Constraints(max_epochs=1, target_tokens=1e9, domain_tokens={"web": 1e9}), "domain_tokens lacks"),
        (Constraints(max_epochs=1, target_tokens=1e9), "need domain_tokens"),
        (Constraints(min_weight={"code": 0.5}, max_epochs=1, target_tokens=1e9,
                     domain_tokens={d: 1e9 if d != "code" else 1e8 for d in DOMAINS}),
         "'code' needs weight >= 0.5 but its repetition_cap allows at most 0.1"),
        (Constraints(kl_to_prior=0.01, min_weight={"code": 0.5}), "KL"),
        (Constraints(kl_to_prior=0.0), "kl_to_prior must be positive"),
    ],
)
def test_infeasible_constraints_raise_one_line_errors(cons, match):
    with pytest.raises(MixoptError, match=match) as e:
        cons.resolve(DOMAINS, prior=np.full(5, 0.2))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("prior", [[0.5, -0.1, 0.6], [0.5, 0.5], [0.0, 0.0, 0.0], [np.nan, 0.5, 0.5]])
def test_bad_prior_raises(prior):
    with pytest.raises(MixoptError, match="prior"):
        FeasibleSet.simplex(["a", "b", "c"], prior=prior)


def test_one_domain_cannot_be_mixed():
    with pytest.raises(MixoptError, match="at least 2 domains"):
        FeasibleSet.simplex(["a"])


# ---------------------------------------------------------------------------------------------- projection
def test_projection_is_identity_inside_and_feasible_outside():
    fs = Constraints(min_weight=0.1, max_weight=0.6).resolve(["a", "b", "c"])
    inside = np.array([[0.2, 0.3, 0.5]])
    assert np.allclose(fs.project_rows(inside), inside)
    assert np.allclose(fs.project(inside[0]), inside[0])
    # Euclidean projection of a vertex: clip(v - tau, 0.1, 0.6) summing to 1
    assert np.allclose(fs.project_rows(np.array([[1.0, 0.0, 0.0]])), [[0.6, 0.2, 0.2]])
    assert np.allclose(fs.project(np.array([1.0, 0.0, 0.0])), [0.6, 0.2, 0.2])


def test_projected_rows_are_feasible_and_match_single_projection():
    cons = Constraints(min_weight={"wiki": 0.05, "books": 0.1}, max_weight=0.6, max_epochs=2.0, target_tokens=1e9,
                       domain_tokens={"web": 5e8, "code": 1e8, "books": 4e8, "papers": 3e8, "wiki": 2e8},
                       kl_to_prior=0.5)
    fs = cons.resolve(DOMAINS, PRIOR)
    V = np.random.default_rng(0).normal(size=(100, 5))
    P = fs.project_rows(V)
    assert all(fs.is_feasible(w) for w in P)
    for v, p in zip(V[:10], P[:10], strict=True):
        assert fs.is_feasible(fs.project(v))
        assert np.allclose(fs.project_rows(p[None, :]), p)  # projecting a feasible point changes nothing


def test_is_feasible_checks_every_constraint():
    fs = Constraints(min_weight={"a": 0.1}, max_weight={"b": 0.5}, kl_to_prior=0.2).resolve(["a", "b", "c"])
    assert fs.is_feasible([0.3, 0.3, 0.4])
    assert not fs.is_feasible([0.3, 0.3, 0.3])  # sum 0.9
    assert not fs.is_feasible([0.05, 0.45, 0.5])  # below min_weight[a]
    assert not fs.is_feasible([0.2, 0.6, 0.2])  # above max_weight[b]
    w = np.array([0.1, 0.1, 0.8])
    assert kl_divergence(w, np.full(3, 1 / 3)) > 0.2 and not fs.is_feasible(w)


# -------------------------------------------------------------------------------------------- finite sets
POINTS = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3]])


def test_finite_set_samples_only_its_points():
    fs = FeasibleSet.simplex(["a", "b", "c"]).restrict(POINTS)
    assert fs.finite and len(fs.points) == 4
    X = fs.sample(3, seed=0)
    assert X.shape == (3, 3) and len({r.tobytes() for r in X}) == 3
    assert all(any(np.array_equal(x, p) for p in POINTS) for x in X)
    assert np.array_equal(fs.sample(3, seed=0), X)
    assert len(fs.sample(10, seed=1)) == 4  # asking for more than there are gives all of them


def test_finite_set_projects_to_the_nearest_point_and_checks_membership():
    fs = FeasibleSet.simplex(["a", "b", "c"]).restrict(POINTS)
    assert np.array_equal(fs.project(np.array([0.65, 0.25, 0.1])), POINTS[0])
    assert np.array_equal(fs.project(np.array([0.0, 0.0, 1.0])), POINTS[2])
    assert np.array_equal(fs.project_rows(np.array([[0.3, 0.6, 0.1], [0.3, 0.35, 0.35]])), POINTS[[1, 3]])
    assert fs.is_feasible(POINTS[1])
    assert not fs.is_feasible(np.array([0.5, 0.25, 0.25]))  # a valid mixture, but not one of the points


def test_restrict_drops_points_that_violate_the_constraints():
    fs = Constraints(max_weight=0.6).resolve(["a", "b", "c"]).restrict(POINTS)
    assert len(fs.points) == 1 and np.array_equal(fs.points[0], POINTS[3])
    assert not fs.is_feasible(POINTS[0])
    two = Constraints(max_weight={"a": 0.5}).resolve(["a", "b", "c"]).restrict(POINTS)
    assert np.array_equal(two.points, POINTS[1:])  # order kept
    with pytest.raises(MixoptError, match="none of the given mixtures") as e:
        Constraints(max_weight=0.5).resolve(["a", "b", "c"]).restrict(POINTS[:3])
    assert "\n" not in str(e.value)
    with pytest.raises(MixoptError, match="2 domains, expected 3"):
        FeasibleSet.simplex(["a", "b", "c"]).restrict([[0.5, 0.5]])


# ---------------------------------------------------------------------------------------------- floors
def test_floors_raise_the_lower_bounds_but_never_above_a_cap():
    c = Constraints(max_weight={"code": 0.02}, max_epochs=1, target_tokens=100,
                    domain_tokens={"web": 100, "code": 100, "books": 100, "papers": 3, "wiki": 100},
                    floors={"web": 0.05, "code": 0.05, "papers": 0.05})
    fs = c.resolve(DOMAINS, prior=PRIOR)
    # web gets its floor, code only its max weight, papers only its repetition cap (3 tokens of 100), the rest 0
    np.testing.assert_allclose(fs.lo, [0.05, 0.02, 0.0, 0.03, 0.0])
    X = fs.sample(200, seed=0)
    assert (fs.lo - 1e-9 <= X).all() and np.allclose(X.sum(1), 1.0)
    # a proposal held up by a floor says so (the report lists the binding constraints)
    assert "floor[web]" in fs.active(np.array([0.05, 0.02, 0.9, 0.03, 0.0]))
    assert "min_weight[web]" in Constraints(min_weight={"web": 0.05}).resolve(DOMAINS).active(
        np.array([0.05, 0.2, 0.5, 0.2, 0.05]))


def test_floors_that_cannot_all_fit_are_dropped_rather_than_making_the_set_empty():
    fs = Constraints(min_weight={"web": 0.5}, floors={d: 0.2 for d in DOMAINS}).resolve(DOMAINS, prior=PRIOR)
    np.testing.assert_allclose(fs.lo, [0.5, 0, 0, 0, 0])  # 0.5 + 4 x 0.2 > 1: only the user's bound stays
    with pytest.raises(MixoptError, match="floors"):
        Constraints(floors={"web": -0.1}).resolve(DOMAINS)
