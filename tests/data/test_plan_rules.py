"""`mixopt plan` says what bounds the proposal before anything runs: the objective, the floor under each
scored domain and where it applies (which depends on the strategy when left at ``auto``), and the
constraints the user set."""

from __future__ import annotations

import pytest

from mixopt.search.plan import format_plan, plan_job


def _domains(corpus) -> dict:
    return {"greek": {"path": str(corpus["greek"])}, "digits": {"path": str(corpus["digits"])},
            "animals": {"path": str(corpus["animals"]), "text_field": "body"}}


def _rules(cfg) -> tuple[dict, list[str]]:
    plan = plan_job(cfg)
    text = format_plan(plan).splitlines()
    return plan["mixture"], [line for line in text if line.startswith(("objective:", "scored floor:", "constraints:"))]


@pytest.mark.parametrize(("strategy", "where"), [("bo", "every proxy run and the proposal"),
                                                 ("mixing_law", "the proposal only")])
def test_plan_shows_the_floor_on_each_scored_domain_and_where_auto_puts_it(tmp_path, small_corpus, make_cfg,
                                                                           strategy, where):
    cfg = make_cfg(tmp_path / "ws", _domains(small_corpus), search={"strategy": strategy, "objective": "mean"},
                   constraints={"scored_floor": 0.3})
    rules, lines = _rules(cfg)
    assert rules["floors"] == pytest.approx({"greek": 0.1, "digits": 0.1, "animals": 0.1})
    assert lines[0] == "objective: mean"
    floor_line = lines[1]
    assert floor_line.startswith("scored floor: 0.1 for each of greek, digits, animals")
    assert where in floor_line and "from auto" in floor_line
    assert not any(line.startswith("constraints:") for line in lines)  # nothing set by the user


def test_plan_says_when_no_floor_applies_and_lists_the_users_constraints(tmp_path, small_corpus, make_cfg):
    domains = _domains(small_corpus)
    off = make_cfg(tmp_path / "a", domains, constraints={"scored_floor": 0, "max_weight": 0.7, "kl_to_prior": 0.5})
    rules, lines = _rules(off)
    assert rules["floors"] == {}
    assert "scored floor: off (constraints.scored_floor 0)" in lines
    assert "constraints: max_weight 0.7, kl_to_prior 0.5" in lines
    one = make_cfg(tmp_path / "b", domains, search={"objective": "digits"})  # one scored domain: no floor
    rules, lines = _rules(one)
    assert rules["floors"] == {} and lines[0] == "objective: digits"
    assert lines[1].startswith("scored floor: none")
    weighted = make_cfg(tmp_path / "c", domains, search={"objective": {"digits": 2, "greek": 1}, "strategy": "bo"},
                        constraints={"scored_floor_scope": "proposal"})
    rules, lines = _rules(weighted)
    assert set(rules["floors"]) == {"digits", "greek"}  # animals is not scored
    assert lines[0] == "objective: digits 2, greek 1"
    assert "the proposal only" in lines[1] and "(scope proposal;" in lines[1]
