"""The job config with hierarchical domains: nested groups parse to path-named leaves plus groups, the flat
form is unchanged, bad groups are one-line errors naming the key, and the data key follows the hierarchy."""

from __future__ import annotations

import pytest
import yaml

from mixopt.config import JobConfig, load_job_config
from mixopt.errors import ConfigError

NESTED = """
name: h
domains:
  web:
    group: {prior: 0.5, min_weight: 0.2, max_weight: 0.7}
    domains:
      hq: corpus/prose
      lq: corpus/noise
      forum:
        group: {max_weight: 0.1}
        domains:
          a: corpus/records
          b: {path: corpus/lowent, max_documents: 10}
  code: corpus/code
"""


def _load(tmp_path, text: str, name: str = "job.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_job_config(path)


def test_nested_groups_parse_to_leaves_and_groups(tmp_path):
    cfg = _load(tmp_path, NESTED)
    assert list(cfg.domains) == ["web/hq", "web/lq", "web/forum/a", "web/forum/b", "code"]
    assert cfg.domains["web/hq"].path == str(tmp_path / "corpus/prose")  # resolved against the file
    assert cfg.domains["web/forum/b"].max_documents == 10
    assert cfg.groups["web"].prior == 0.5 and cfg.groups["web"].max_weight == 0.7
    assert cfg.groups["web/forum"].max_weight == 0.1 and cfg.groups["web/forum"].prior is None
    h = cfg.hierarchy()
    assert h.names == ["web", "web/forum"] and list(h.members["web"]) == [0, 1, 2, 3]
    # MLflow params carry the groups; the dumped config loads back to the same job
    flat = cfg.to_flat_dict()
    assert flat["groups.web.max_weight"] == 0.7 and "domains.web/hq.path" in flat
    again = JobConfig.model_validate(yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json"))))
    assert again == cfg


def test_flat_config_is_unchanged(tmp_path):
    cfg = _load(tmp_path, "name: f\ndomains: {a: x, b: y}\n")
    assert list(cfg.domains) == ["a", "b"] and cfg.groups == {} and cfg.hierarchy().flat
    # the same data key as before groups existed: the flat dump has no group entry in it
    before = JobConfig.model_validate({"name": "f", "workspace": cfg.workspace,
                                       "domains": {k: v.model_dump() for k, v in cfg.domains.items()}})
    assert before.data_key == cfg.data_key


def test_data_key_changes_with_the_hierarchy(tmp_path):
    flat = _load(tmp_path, "name: a\ndomains: {hq: c/p, lq: c/n, code: c/c}\n")
    grouped = _load(tmp_path, "name: a\ndomains:\n  web: {domains: {hq: c/p, lq: c/n}}\n  code: c/c\n")
    regrouped = _load(tmp_path, "name: a\ndomains:\n  web: {domains: {hq: c/p}}\n  rest: {domains: {lq: c/n}}\n"
                      "  code: c/c\n")
    assert len({flat.data_key, grouped.data_key, regrouped.data_key}) == 3
    # bounds and priors are constraints, not data: the shards are shared
    bounded = _load(tmp_path, "name: a\ndomains:\n  web: {group: {max_weight: 0.4}, domains: {hq: c/p, lq: c/n}}\n"
                    "  code: c/c\n")
    assert bounded.data_key == grouped.data_key


@pytest.mark.parametrize("domains, msg", [
    ({"web": {"group": {"max_weight": 0.5}}, "code": "c"}, "domains.web.domains: a group needs a mapping"),
    ({"web": {"domains": {"a": "x"}, "bounds": {}}, "code": "c"}, "domains.web: unknown key(s) ['bounds']"),
    ({"web": {"group": {"max_weight": 2}, "domains": {"a": "x"}}, "code": "c"},
     "domains.web.group.max_weight: Input should be less than or equal to 1"),
    ({"web": {"domains": {"b": {"group": {"min": 0.2}, "domains": {"a": "x"}}}}, "code": "c"},
     "domains.web.domains.b.group.min: unknown key"),
    ({"web": {"domains": {"a b": "x"}}, "code": "c"}, "domain name 'web/a b' must be"),
    ({"web/a": "x", "code": "c"}, "domain 'web/a': its group 'web' is not declared"),
    ({"web": {"group": {"min_weight": 0.6}, "domains": {"a": "x"}},
      "math": {"group": {"min_weight": 0.5}, "domains": {"b": "y"}}},
     "min weights of the top-level groups and domains sum to 1.1 > 1"),
    ({"web": {"group": {"prior": 0.6}, "domains": {"a": "x"}},
      "math": {"group": {"prior": 0.6}, "domains": {"b": "y"}}}, "group priors in the top level sum to 1.2 > 1"),
    ({"web": {"group": {"prior": 0.8, "max_weight": 0.5}, "domains": {"a": "x"}}, "code": "c"},
     "prior 0.8 lies outside its [min_weight, max_weight]"),
])
def test_bad_groups_are_one_line_errors_naming_the_key(tmp_path, domains, msg):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, yaml.safe_dump({"name": "bad", "domains": domains}))
    text = str(e.value)
    assert msg in text and text.startswith(str(tmp_path / "job.yaml")) and "\n" not in text


def test_group_bounds_are_checked_against_domain_constraints(tmp_path):
    job = {"name": "c", "domains": {"web": {"group": {"max_weight": 0.3}, "domains": {"a": "x", "b": "y"}},
                                    "code": "z"},
           "constraints": {"min_weight": 0.2}}
    with pytest.raises(ConfigError, match="group 'web' allows at most 0.3 but its domains need at least 0.4"):
        _load(tmp_path, yaml.safe_dump(job))
    job["constraints"] = {"max_weight": {"web": 0.5}}  # a group named where domains belong: say where it goes
    with pytest.raises(ConfigError, match=r"names unknown domain\(s\) \['web'\].*domains.web.group"):
        _load(tmp_path, yaml.safe_dump(job))


FLAT = """
name: f
domains: {a: corpus/a, b: corpus/b, c: corpus/c, d: corpus/d}
"""


@pytest.mark.parametrize("extra, floors", [
    ("", {d: 0.0625 for d in "abcd"}),  # mean of all four: a quarter of 1/4 each
    ("search: {objective: {a: 1, b: 2}}", {"a": 0.125, "b": 0.125}),  # only the scored domains
    ("search: {objective: {a: 1, b: 2}}\nconstraints: {min_weight: {a: 0.01}}", {"b": 0.125}),  # user's bound wins
    ("search: {objective: {a: 1}}", {}),  # one scored domain: nothing to hedge
    ("constraints: {scored_floor: 0}", {}),  # off
    ("constraints: {scored_floor: 0.5}", {d: 0.125 for d in "abcd"}),
])
def test_scored_floors_cover_the_domains_the_objective_scores(tmp_path, extra, floors):
    cfg = _load(tmp_path, FLAT + extra)
    assert cfg.scored_floors() == pytest.approx(floors)


def test_a_scored_floor_of_one_or_more_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="scored_floor"):
        _load(tmp_path, FLAT + "constraints: {scored_floor: 1.0}")


@pytest.mark.parametrize("extra, scope", [
    ("", "search"),  # the default strategy (bo): the floors bind every proxy
    ("search: {strategy: mixing_law}", "proposal"),  # the law is fitted over the whole simplex
    ("search: {strategy: mixing_law}\nconstraints: {scored_floor_scope: search}", "search"),  # the user's choice
    ("search: {strategy: regmix}\nconstraints: {scored_floor_scope: proposal}", "proposal"),
])
def test_the_scored_floor_scope_follows_the_strategy_unless_set(tmp_path, extra, scope):
    assert _load(tmp_path, FLAT + extra).scored_floor_scope() == scope


def test_an_unknown_scored_floor_scope_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="scored_floor_scope"):
        _load(tmp_path, FLAT + "constraints: {scored_floor_scope: everywhere}")
