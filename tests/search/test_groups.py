"""A tiny search over hierarchical domains: the design and the proposal honour the group bounds, the prior
takes the group's share, and the report and the MLflow parent run show group totals beside the leaves."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from mixopt.cli import main
from mixopt.config import JobConfig
from mixopt.search import read_runs, run_search

pytestmark = pytest.mark.integration

TEXT, SYNTH = ("text/prose", "text/records"), ("synthetic/arithmetic", "synthetic/lowent", "synthetic/noise")


def _grouped(tiny_job, demo_prepared) -> JobConfig:
    d = tiny_job("groups", search={"strategy": "bo", "n_init": 3}, budget={"runs": 3}).model_dump(mode="json")
    d["tokenizer"]["path"] = str(demo_prepared.tokenizer_path)  # new leaf names mean new shards: skip the BPE
    src = d["domains"]
    d["domains"] = {
        "text": {"group": {"prior": 0.5, "min_weight": 0.4, "max_weight": 0.6},
                 "domains": {"prose": src["prose"], "records": src["records"]}},
        "synthetic": {"group": {"max_weight": 0.3},
                      "domains": {"arithmetic": src["arithmetic"], "lowent": src["lowent"], "noise": src["noise"]}},
        "code": src["code"],
    }
    return JobConfig.model_validate(d)


def _totals(w: dict) -> tuple[float, float]:
    return sum(w[d] for d in TEXT), sum(w[d] for d in SYNTH)


@pytest.mark.slow
def test_tiny_search_with_groups(ray_cluster, tiny_job, demo_prepared, tmp_path, capsys):
    cfg = _grouped(tiny_job, demo_prepared)
    res = run_search(cfg, progress=False)
    runs = read_runs(cfg.job_dir / "runs.jsonl")
    assert len(runs) == 3 and all(r.ok for r in runs)
    assert set(runs[0].weights) == {*TEXT, *SYNTH, "code"}
    for r in runs:  # the initial design and the strategy's picks are within the group bounds
        text, synth = _totals(r.weights)
        assert 0.4 - 1e-9 <= text <= 0.6 + 1e-9 and synth <= 0.3 + 1e-9, r.run_id

    p = res.proposal
    text, synth = _totals(p.weights)
    assert 0.4 - 1e-9 <= text <= 0.6 + 1e-9 and synth <= 0.3 + 1e-9
    assert sum(p.weights.values()) == pytest.approx(1.0, abs=1e-9)
    assert p.context["groups"] == ["text", "synthetic"]
    assert _totals(p.baselines["prior"]["weights"])[0] == pytest.approx(0.5)  # the group's prior share

    # the report shows each group's total above its indented leaves
    job = tmp_path / "groups.yaml"
    job.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    capsys.readouterr()
    assert main(["report", str(job)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {ln.split()[0]: ln for ln in lines if ln.startswith("  ") and ln.split() and ln.split()[1:2] == ["(group)"]}
    assert set(row) == {"text", "synthetic"}
    assert float(row["text"].split()[2]) == pytest.approx(text, abs=1e-4)  # proposal column
    assert float(row["synthetic"].split()[2]) == pytest.approx(synth, abs=1e-4)
    i = lines.index(row["text"])
    assert lines[i + 1].startswith("    text/prose") and lines[i + 2].startswith("    text/records")

    # MLflow: the parent run has the proposal's group totals and leaves; child runs carry group totals
    client = MlflowClient(cfg.tracking_uri())
    m = client.get_run(res.parent_run_id).data.metrics
    assert m["proposal/w.text"] == pytest.approx(text) and m["proposal/w.synthetic"] == pytest.approx(synth)
    assert m["proposal/w.text/prose"] == pytest.approx(p.weights["text/prose"])
    params = client.get_run(res.parent_run_id).data.params
    assert params["groups.text.max_weight"] == "0.6"
    exp = client.get_experiment_by_name(cfg.experiment_name())
    kids = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{res.parent_run_id}'")
    by_id = {k.data.tags["mixopt.run_id"]: k for k in kids}
    for r in runs:
        assert float(by_id[r.run_id].data.params["w.text"]) == pytest.approx(_totals(r.weights)[0], rel=1e-5)
    assert np.isfinite(p.predicted)
