"""RunRecord JSON round trip and validation."""

from __future__ import annotations

import json
import math

import pytest

from mixopt.errors import MixoptError
from mixopt.proxies import RunRecord


def _record(**kw) -> RunRecord:
    base = dict(run_id="abc", weights={"code": 0.25, "web": 0.75}, preset="moe-tiny", seed=3, tokens=4096,
                n_params=100, n_active_params=60, n_nonembed_params=40, flops=1.5e9, steps=[2, 8],
                tokens_seen=[1024, 4096], val_loss={"code": [6.1, 5.0], "web": [6.3, 5.5]},
                final_loss={"code": 5.0, "web": 5.5}, wall_time=1.25, tokens_per_s=3276.8, status="ok",
                reason=None, extra={"train_loss": [6.2, 5.4]})
    return RunRecord(**(base | kw))


def test_json_round_trip_is_exact():
    r = _record()
    assert RunRecord.from_json(r.to_json()) == r
    assert RunRecord.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.mean_final_loss() == pytest.approx(5.25)


def test_failed_record_with_non_finite_losses_round_trips():
    r = _record(status="failed", reason="non-finite training loss (nan) at step 9",
                val_loss={"code": [float("nan")], "web": [float("inf")]}, final_loss={})
    back = RunRecord.from_json(r.to_json())
    assert back.status == "failed" and back.reason == r.reason and not back.ok
    assert math.isnan(back.val_loss["code"][0]) and math.isinf(back.val_loss["web"][0])
    assert math.isnan(back.mean_final_loss())


def test_malformed_records_are_one_line_errors():
    d = _record().to_dict()
    del d["seed"]
    with pytest.raises(MixoptError, match=r"missing field\(s\) \['seed'\]"):
        RunRecord.from_dict(d)
    with pytest.raises(MixoptError, match="unknown field"):
        RunRecord.from_dict(_record().to_dict() | {"bogus": 1})
    with pytest.raises(MixoptError, match="not valid JSON"):
        RunRecord.from_json("{oops")
