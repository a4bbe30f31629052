"""Mixture reuse: a changed or added domain re-searches only what changed, keeping the previous proportions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixopt.errors import ConfigError
from mixopt.search.reuse import Reuse

PREV = {"web": 0.5, "code": 0.3, "math": 0.15, "old": 0.05}
PREV_HASH = {"web": "a", "code": "b", "math": "c", "old": "d"}


def _reuse(mode="collapse", leaves=("web", "code", "math", "books"), hashes=None):
    hashes = hashes or {"web": "a", "code": "b", "math": "CHANGED", "books": "e"}
    return Reuse.from_parts("prev", mode, list(leaves), PREV, PREV_HASH, hashes)


def test_domains_are_classified_by_their_data_hash():
    r = _reuse()
    assert (r.kept, r.changed, r.new, r.removed) == (["web", "code"], ["math"], ["books"], ["old"])
    assert r.coordinates == ["existing", "math", "books"]


def test_collapse_keeps_the_previous_proportions_and_round_trips():
    r = _reuse()
    Z = np.random.default_rng(0).dirichlet(np.ones(3), size=20)
    W = r.expand(Z)
    assert np.allclose(W.sum(axis=1), 1) and (W >= 0).all()
    assert np.allclose(W[:, 0] / W[:, 1], PREV["web"] / PREV["code"])  # web:code as before, at any share
    assert np.allclose(r.reduce(W), Z)


def test_freeze_keeps_the_previous_absolute_weights():
    r = _reuse("freeze")
    assert r.coordinates == ["math", "books"]
    W = r.expand(np.random.default_rng(1).dirichlet(np.ones(2), size=10))
    assert np.allclose(W[:, :2], [PREV["web"], PREV["code"]]) and np.allclose(W.sum(axis=1), 1)


def test_domain_bounds_become_bounds_on_the_collapsed_domain():
    r = _reuse()  # ratios web 0.625, code 0.375
    lo, hi = r.bounds(np.zeros(4), np.array([0.5, 0.6, 1.0, 1.0]))
    assert hi["existing"] == pytest.approx(0.5 / 0.625)  # web would pass its cap 0.5 beyond existing = 0.8
    assert lo["existing"] == 0.0 and hi["books"] == 1.0


@pytest.mark.parametrize(("hashes", "match"), [
    ({"web": "x", "code": "y", "math": "z", "books": "e"}, "no domain is unchanged"),
    ({"web": "a", "code": "b", "math": "c"}, "no domain changed or was added"),
])
def test_nothing_to_reuse_or_nothing_to_search_is_a_one_line_error(hashes, match):
    with pytest.raises(ConfigError, match=match):
        Reuse.from_parts("prev", "collapse", list(hashes), PREV, PREV_HASH, hashes)


def test_a_domain_named_like_the_collapsed_one_is_refused():
    with pytest.raises(ConfigError, match="existing"):
        Reuse.from_parts("prev", "collapse", ["web", "existing"], PREV, PREV_HASH, {"web": "a", "existing": "q"})


def test_reuse_of_a_folder_that_is_not_a_job_is_a_one_line_error(tiny_job, tmp_path):
    from mixopt.search.reuse import load_reuse

    cfg = tiny_job("reuse-nowhere")
    cfg.reuse = {"job": str(tmp_path)}
    with pytest.raises(ConfigError, match="neither a job YAML file nor a job directory") as e:
        load_reuse(cfg)
    assert "\n" not in str(e.value)


def test_search_with_reuse_searches_only_the_changed_and_new_domains(ray_cluster, tiny_job, demo_corpus, capsys):
    from mixopt.data.shards import read_manifest
    from mixopt.search import read_runs, run_search
    from mixopt.search.report import format_proposal

    prev = tiny_job("reuse-v1", budget={"runs": 3})
    first = run_search(prev, progress=False)
    before = first.proposal.weights

    cfg = tiny_job("reuse-v2", budget={"runs": 3})
    domains = cfg.model_dump()["domains"]
    domains["records"]["max_documents"] = 100                                         # changed data
    domains["extra"] = dict(domains["prose"], max_documents=30)                        # a new domain
    cfg = type(cfg).model_validate(cfg.model_dump() | {"domains": domains, "reuse": {"job": str(prev.job_dir)}})
    result = run_search(cfg, progress=False)

    kept = [d for d in before if d != "records"]
    p = result.proposal
    assert set(p.weights) == set(kept) | {"records", "extra"} and sum(p.weights.values()) == pytest.approx(1)
    assert p.context["reuse"]["changed"] == ["records"] and p.context["reuse"]["new"] == ["extra"]
    prev_share = np.array([before[d] for d in kept]) / sum(before[d] for d in kept)
    for w in [p.weights] + [r.weights for r in read_runs(cfg.job_dir / "runs.jsonl")]:
        share = np.array([w[d] for d in kept])
        assert np.allclose(share / share.sum(), prev_share, atol=1e-6)  # every proxy kept the old proportions
    assert len({round(r.weights["extra"], 6) for r in result.runs}) > 1          # the new domain was searched

    # the unchanged domains were not re-tokenised: their shards are the previous job's, byte for byte
    old, new = read_manifest(prev.data_dir), read_manifest(cfg.data_dir)
    assert cfg.data_dir != prev.data_dir
    for d in kept:
        assert (cfg.data_dir / new["shards"][d]["file"]).read_bytes() == \
            (prev.data_dir / old["shards"][d]["file"]).read_bytes()
    assert "reuse:" in format_proposal(p) and "existing" in format_proposal(p)
    job_file = json.loads((cfg.job_dir / "job.json").read_text())
    assert job_file["config"]["reuse"]["mode"] == "collapse"
    # the file describes this job: its config, read back, names the same data folder (domain order included)
    assert type(cfg).model_validate(job_file["config"]).data_dir == cfg.data_dir
