"""The objective: parsed once from YAML / CLI / Python, resolved against a table's target names."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import MixoptError, TableError
from mixopt.objective import Objective

NAMES = ["loss/web", "loss/code", "loss/math", "acc/math"]


# ---------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("spec", [None, "mean", " mean ", Objective("mean")])
def test_mean_is_the_default_and_weighs_every_target_equally(spec):
    obj = Objective.parse(spec)
    assert obj.is_mean and obj == Objective()
    np.testing.assert_allclose(obj.weights(NAMES), np.full(4, 0.25))


def test_a_target_name_is_that_one_column():
    obj = Objective.parse("loss/code")
    assert not obj.is_mean and obj.describe() == "loss/code"
    np.testing.assert_array_equal(obj.weights(NAMES), [0, 1, 0, 0])


def test_cli_string_and_mapping_are_the_same_objective():
    cli = Objective.parse("loss/code=3, loss/web=1")
    py = Objective.parse({"loss/code": 3, "loss/web": 1.0})
    assert cli == py and hash(cli) == hash(py)
    assert cli.spec == {"loss/code": 3.0, "loss/web": 1.0}
    assert Objective.parse(cli.describe()) == cli  # describe() is the command-line form
    assert Objective.parse(cli.to_json()) == cli and Objective.parse("mean").to_json() == "mean"
    np.testing.assert_allclose(cli.weights(NAMES), [0.25, 0.75, 0, 0])


def test_equal_objectives_hash_equal():
    # the same weights written in another order are the same objective, so they must hash alike
    a, b = Objective.parse("web=2,code=1"), Objective.parse("code=1,web=2")
    assert a == b
    assert hash(a) == hash(b) and len({a, b}) == 1


def test_name_with_an_equals_sign_splits_at_the_last_one():
    obj = Objective.parse("lr=1e-3/loss=2")
    assert obj.spec == {"lr=1e-3/loss": 2.0}


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("code=two", r"'two' \(for 'code'\) is not a number"),
        ("=2", "expected 'mean', a target name or 'name=weight"),
        ("code=1,=2", "expected 'mean', a target name or 'name=weight"),
        ("code=1,web", "expected 'mean', a target name or 'name=weight"),
        ("code=0,web=0", "every weight is zero"),
        ("code=inf", "not finite"),
        ("code=nan", "not finite"),
    ],
)
def test_bad_strings_are_one_line_table_errors(text, match):
    with pytest.raises(TableError, match=match) as e:
        Objective.parse(text)
    assert "\n" not in str(e.value) and isinstance(e.value, MixoptError)


@pytest.mark.parametrize(
    "spec, match",
    [({}, "no targets"), ({"code": "heavy"}, "'code' is not a number"), ([1, 2], "expected 'mean'"),
     (3.0, "expected 'mean'")],
)
def test_bad_specs_are_one_line_table_errors(spec, match):
    with pytest.raises(TableError, match=match):
        Objective(spec)


# ------------------------------------------------------------------------------------------- resolution
def test_a_unique_part_of_a_name_selects_the_column():
    np.testing.assert_array_equal(Objective("code").weights(NAMES), [0, 1, 0, 0])
    np.testing.assert_allclose(Objective({"web": 1, "loss/math": 1}).weights(NAMES), [0.5, 0, 0.5, 0])


def test_an_exact_name_wins_over_a_substring_match():
    names = ["code", "code_python"]
    np.testing.assert_array_equal(Objective("code").weights(names), [1, 0])


def test_an_ambiguous_part_names_the_matching_columns():
    with pytest.raises(TableError, match="'math' matches 2 targets") as e:
        Objective("math").weights(NAMES)
    assert "loss/math" in str(e.value) and "acc/math" in str(e.value) and "full column name" in str(e.value)
    assert "\n" not in str(e.value)


def test_an_unknown_target_lists_the_targets():
    with pytest.raises(TableError, match="unknown target 'wiki'") as e:
        Objective({"wiki": 1.0}).weights(NAMES)
    assert all(n in str(e.value) for n in NAMES) and "\n" not in str(e.value)
    many = [f"t{i:02d}" for i in range(30)]
    with pytest.raises(TableError, match=r"\(30 in all\)") as e:
        Objective("zzz").weights(many)
    assert "t29" not in str(e.value)  # a long list is cut short


def test_no_targets_is_an_error():
    with pytest.raises(TableError, match="no targets"):
        Objective().weights([])


def test_weights_normalised_by_the_sum_of_absolute_values():
    w = Objective({"web": 2, "code": 2}).weights(NAMES)
    np.testing.assert_allclose(w, [0.5, 0.5, 0, 0])  # {a: 2, b: 2} is the mean of a and b
    np.testing.assert_allclose(Objective({"web": 10}).weights(NAMES), [1, 0, 0, 0])


def test_huge_weights_stay_finite():
    w = Objective({"web": 1e308, "code": 1e308, "loss/math": 5e307}).weights(NAMES)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w, [0.4, 0.4, 0.2, 0])
    tiny = Objective({"web": 1e-320, "code": 3e-320}).weights(NAMES)  # subnormal weights too
    np.testing.assert_allclose(tiny, [0.25, 0.75, 0, 0], rtol=1e-3)


def test_weights_of_one_column_given_twice_add_up():
    np.testing.assert_allclose(Objective({"web": 1, "loss/web": 1, "code": 2}).weights(NAMES), [0.5, 0.5, 0, 0])
    with pytest.raises(TableError, match="cancel out"):
        Objective({"web": 1, "loss/web": -1}).weights(NAMES)


def test_negative_weight_maximises_a_column():
    obj = Objective.parse("loss/math=1,acc/math=-1")
    np.testing.assert_allclose(obj.weights(NAMES), [0, 0, 0.5, -0.5])
    Y = np.array([[0, 0, 2.0, 0.9], [0, 0, 2.0, 0.4]])  # same loss, higher accuracy in row 0
    v = obj.values(Y, NAMES)
    assert v[0] < v[1]  # lower is better: the more accurate run wins
    np.testing.assert_allclose(v, [0.5 * 2.0 - 0.5 * 0.9, 0.5 * 2.0 - 0.5 * 0.4])


# ---------------------------------------------------------------------------------------- values and std
def test_values_is_the_weighted_sum_and_ignores_unused_nan_columns():
    Y = np.array([[2.0, 4.0, np.nan, np.nan], [3.0, 1.0, 5.0, 0.5]])
    v = Objective.parse("loss/web=1,loss/code=3").values(Y, NAMES)
    np.testing.assert_allclose(v, [0.25 * 2 + 0.75 * 4, 0.25 * 3 + 0.75 * 1])
    m = Objective().values(Y, NAMES)
    assert np.isnan(m[0]) and m[1] == pytest.approx(np.mean(Y[1]))  # the mean uses every column
    np.testing.assert_allclose(Objective().values(np.array([1.0, 3.0]), ["loss"]), [1.0, 3.0])  # (n,) is one target


def test_combine_std_treats_targets_as_independent():
    S = np.array([[0.3, 0.4, 9.0, np.nan]])
    sd = Objective.parse("loss/web=1,loss/code=1").combine_std(S, NAMES)
    np.testing.assert_allclose(sd, [np.sqrt(0.5**2 * 0.3**2 + 0.5**2 * 0.4**2)])
    one = Objective("loss/code").combine_std(S, NAMES)
    np.testing.assert_allclose(one, [0.4])


def test_used_targets_are_the_nonzero_weights():
    assert Objective().used_targets(NAMES) == [0, 1, 2, 3]
    assert Objective("code").used_targets(NAMES) == [1]
    assert Objective({"acc/math": -1, "web": 2}).used_targets(NAMES) == [0, 3]
