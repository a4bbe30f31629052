"""Hierarchical domains: the prior with group shares, and the one feasible set honouring group bounds in
its design, its projection, its checks and the proposer."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.feasible import Constraints, FeasibleSet
from mixopt.hierarchy import Group, Hierarchy, group_totals
from mixopt.proposal import propose

# web (0.2..0.5) holds hq, lq and a nested group web/forum (at most 0.1); code and math at the top level
DOMAINS = ["web/hq", "web/lq", "web/forum/a", "web/forum/b", "code", "math"]
GROUPS = [Group("web", min_weight=0.2, max_weight=0.5, prior=0.6 - 0.1), Group("web/forum", max_weight=0.1)]
TOKENS = np.array([10.0, 50.0, 20.0, 20.0, 60.0, 40.0])
WEB, FORUM = np.arange(4), np.arange(2, 4)


def _groups_ok(X, tol=1e-9) -> bool:
    X = np.atleast_2d(X)
    web, forum = X[:, WEB].sum(1), X[:, FORUM].sum(1)
    return bool((web >= 0.2 - tol).all() and (web <= 0.5 + tol).all() and (forum <= 0.1 + tol).all()
                and np.allclose(X.sum(1), 1.0, atol=1e-9) and (-tol <= X).all())


def _fs(**kw) -> FeasibleSet:
    h = Hierarchy(DOMAINS, GROUPS)
    return Constraints(groups=GROUPS, **kw).resolve(DOMAINS, prior=h.prior(TOKENS))


# ---------------------------------------------------------------------------------------------- prior
def test_group_prior_fixes_the_share_and_tokens_split_it():
    p = Hierarchy(DOMAINS, GROUPS).prior(TOKENS)
    assert p.sum() == pytest.approx(1.0)
    assert p[WEB].sum() == pytest.approx(0.5)  # the group's prior, whatever its tokens (100 of 200)
    assert p[:4] == pytest.approx(0.5 * TOKENS[:4] / TOKENS[:4].sum())  # split by token shares inside
    assert p[4:] == pytest.approx(0.5 * np.array([0.6, 0.4]))  # the rest by token shares
    # without a group prior: plain token shares
    flat = Hierarchy(DOMAINS, [Group("web"), Group("web/forum")]).prior(TOKENS)
    assert flat == pytest.approx(TOKENS / TOKENS.sum())


def test_nested_group_prior_is_a_share_of_the_whole_mixture():
    h = Hierarchy(DOMAINS, [Group("web", prior=0.6), Group("web/forum", prior=0.05)])
    p = h.prior(TOKENS)
    assert p[FORUM].sum() == pytest.approx(0.05) and p[WEB].sum() == pytest.approx(0.6)
    assert p[0] / p[1] == pytest.approx(10 / 50)


@pytest.mark.parametrize("groups, msg", [
    ([Group("web"), Group("web/forum", prior=0.05)], "sets a prior but its parent group 'web' does not"),
    ([Group("web", prior=0.7), Group("web/forum", prior=0.8)], "sum to 0.8 > 0.7"),
    ([Group("web", prior=0.3, max_weight=0.2), Group("web/forum")], "outside its [min_weight, max_weight]"),
])
def test_inconsistent_priors_are_one_line_errors(groups, msg):
    with pytest.raises(MixoptError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        Hierarchy(DOMAINS, groups).prior(TOKENS)


def test_undeclared_or_empty_groups_are_errors():
    with pytest.raises(MixoptError, match="group 'web/forum' is not declared"):
        Hierarchy(DOMAINS, [Group("web")])
    with pytest.raises(MixoptError, match="group 'books' has no domains"):
        Hierarchy(DOMAINS, [*GROUPS, Group("books")])


# ---------------------------------------------------------------------------------------------- feasible set
@pytest.mark.parametrize("kw", [{}, {"max_weight": 0.35}, {"min_weight": {"code": 0.1}, "kl_to_prior": 0.4}])
def test_design_honours_group_bounds_exactly_over_many_seeds(kw):
    fs = _fs(**kw)
    for seed in range(20):
        X = fs.sample(100, seed=seed)
        assert _groups_ok(X), seed
        assert all(fs.is_feasible(x) for x in X)
    # the group's range is covered: its max is reached, and most designs lie inside it
    X = fs.sample(2000, seed=0)
    web = X[:, WEB].sum(1)
    assert web.max() == pytest.approx(0.5, abs=1e-9) and np.mean(web < 0.5 - 1e-6) > 0.5
    assert np.array_equal(fs.sample(50, seed=7), fs.sample(50, seed=7))


def test_projection_lands_in_the_set_and_keeps_feasible_points():
    fs = _fs(max_weight=0.4)
    V = np.random.default_rng(0).normal(size=(300, 6)) * 2
    P = fs.project_rows(V)
    assert _groups_ok(P) and (P <= 0.4 + 1e-9).all()
    assert all(_groups_ok(fs.project(v)) for v in V[:50])
    X = fs.sample(100, seed=1)
    assert np.allclose(fs.project_rows(X), X, atol=1e-12)
    # a mixture all in web is pulled back to web's max, spread over the other top-level entries
    w = fs.project(np.array([0.4, 0.3, 0.2, 0.1, 0.0, 0.0]))
    assert w[WEB].sum() == pytest.approx(0.5) and w[FORUM].sum() <= 0.1 + 1e-12
    assert "max_weight[web]" in fs.active(w)


def test_flattening_the_prior_evens_out_groups_before_leaves():
    h = Hierarchy(DOMAINS, GROUPS)
    p = h.prior(TOKENS)
    assert h.temper(p, 1.0) == pytest.approx(p)
    u = h.temper(p, 0.0)  # uniform over web / code / math, then within web over hq / lq / forum
    assert u[WEB].sum() == pytest.approx(1 / 3) and u[4] == pytest.approx(1 / 3)
    assert u[FORUM].sum() == pytest.approx(1 / 9) and u[0] == pytest.approx(1 / 9)


def test_without_groups_the_projection_is_the_flat_one():
    lo, hi = np.array([0.0, 0.05, 0.0, 0.0]), np.array([0.6, 0.6, 0.3, 1.0])
    flat = Constraints(min_weight=dict(zip("abcd", lo, strict=True)), max_weight=dict(zip("abcd", hi, strict=True))
                       ).resolve(list("abcd"))
    V = np.random.default_rng(1).normal(size=(200, 4))
    assert np.allclose(Hierarchy(list("abcd")).project_rows(V, lo, hi), flat.project_rows(V), atol=1e-12)


def test_checks_and_restrict_use_the_group_bounds():
    fs = _fs()
    bad = np.array([0.3, 0.3, 0.0, 0.0, 0.2, 0.2])  # web 0.6 > 0.5
    assert not fs.is_feasible(bad)
    good = np.array([0.2, 0.2, 0.05, 0.05, 0.3, 0.2])
    assert fs.is_feasible(good) and "max_weight[web]" in fs.active(good)
    assert "max_weight[web/forum]" in fs.active(good)
    assert np.array_equal(fs.restrict([bad, good]).points, good[None, :])


@pytest.mark.parametrize("groups, kw, msg", [
    ([Group("web", min_weight=0.7), Group("web/forum"), Group("other", min_weight=0.4)], {},
     "min weights of the top-level groups and domains sum to 1.1 > 1"),
    ([Group("web", max_weight=0.3), Group("web/forum")], {"min_weight": 0.1},
     "group 'web' allows at most 0.3 but its domains need at least 0.4"),
    ([Group("web", min_weight=0.9), Group("web/forum")], {"max_weight": 0.2},
     "group 'web' needs at least 0.9 but its domains allow at most 0.8"),
    ([Group("web", min_weight=0.3, max_weight=0.2), Group("web/forum")], {}, "min_weight 0.3 > max_weight 0.2"),
])
def test_infeasible_group_bounds_are_one_line_errors(groups, kw, msg):
    domains = [*DOMAINS[:4], "other/code", "other/math"] if any(g.name == "other" for g in groups) else DOMAINS
    with pytest.raises(MixoptError, match="infeasible constraints: .*" + msg.replace("[", r"\[")) as e:
        Constraints(groups=groups, **kw).resolve(domains)
    assert "\n" not in str(e.value)


def test_group_totals_of_a_weight_dict():
    w = dict(zip(DOMAINS, [0.1, 0.1, 0.05, 0.05, 0.4, 0.3], strict=True))
    assert group_totals(w, ["web", "web/forum"]) == pytest.approx({"web": 0.3, "web/forum": 0.1})


# ---------------------------------------------------------------------------------------------- proposer
class _Linear:
    """A known linear loss (lower with more web/hq): the best mixture puts web at its max."""

    smooth, target_names, n_fit = True, ["loss"], 0
    coef = np.array([-3.0, 0.0, -2.0, -2.0, 1.0, 0.5])

    def predict(self, W):
        return np.atleast_2d(W) @ self.coef, None

    def predict_targets(self, W):
        return None

    def describe(self):
        return "linear"


@pytest.mark.parametrize("method", ["sample_topk", "slsqp"])
def test_the_proposal_obeys_group_bounds(method):
    fs = _fs()
    p = propose(_Linear(), fs, method=method, seed=0, n_candidates=1000)
    w = p.vector(DOMAINS)
    assert _groups_ok(w) and fs.is_feasible(w)
    assert w[FORUM].sum() <= 0.1 + 1e-9
    if method == "slsqp":  # the loss wants all web: the group's max binds
        assert w[WEB].sum() == pytest.approx(0.5, abs=1e-6) and "max_weight[web]" in p.active_constraints
    else:  # an average of the best samples: close to the bound, inside it
        assert 0.45 < w[WEB].sum() <= 0.5 + 1e-9
