"""Job state on disk: the append-only run table, atomic state.json, resume bookkeeping."""

from __future__ import annotations

import json

import pytest

from mixopt.config import JobConfig
from mixopt.errors import ConfigError, MixoptError
from mixopt.search.state import JobState, Launch, RunEntry, atomic_write_text, config_hash, read_runs


def _entry(rid: str, obj: float | None = 1.0, status: str = "ok") -> RunEntry:
    return RunEntry(run_id=rid, weights={"a": 0.25, "b": 0.75}, fidelity=0, preset="dense-tiny", tokens=1000, seed=7,
                    source="init", status=status, objective=obj, final_loss={"a": 1.0, "b": 1.0} if obj else {},
                    flops=1e9, wall_time=1.0)


def _launch(rid: str) -> Launch:
    return Launch(rid, {"a": 0.5, "b": 0.5}, 0, "dense-tiny", 1000, 11, "init", 1e9)


def test_finished_runs_survive_reopen_and_leave_pending(tmp_path):
    st = JobState.open(tmp_path, config_hash="h")
    st.add_pending(_launch("r0000"))
    st.add_pending(_launch("r0001"))
    st.append_run(_entry("r0000", 2.0))
    st2 = JobState.open(tmp_path, config_hash="h")
    assert [r.run_id for r in st2.runs] == ["r0000"]
    assert st2.runs[0].objective == 2.0
    assert [p.run_id for p in st2.pending_launches()] == ["r0001"]
    assert st2.pending_launches()[0].seed == 11  # re-run with the same seed
    assert st2.meta["unlogged"] == ["r0000"]


def test_a_mixtures_repeats_are_pending_together_and_rerun_with_their_seeds(tmp_path, monkeypatch):
    st = JobState.open(tmp_path, config_hash="h")
    saves = []
    monkeypatch.setattr(st, "save", lambda: saves.append(dict(st.meta["pending"])))
    a, b = _launch("r0000"), Launch("r0001", {"a": 0.5, "b": 0.5}, 0, "dense-tiny", 1000, 12, "init", 1e9)
    st.add_pending(a, b)
    assert len(saves) == 1 and set(saves[0]) == {"r0000", "r0001"}  # one write: never one repeat without the other
    monkeypatch.undo()
    st.save()
    again = JobState.open(tmp_path, config_hash="h")
    assert {(x.run_id, x.seed) for x in again.pending_launches()} == {("r0000", 11), ("r0001", 12)}


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    st = JobState.open(tmp_path, config_hash="h")
    st.append_run(_entry("r0000"))
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write('{"run_id": "r0001", "weig')  # killed mid-write
    st2 = JobState.open(tmp_path, config_hash="h")
    assert [r.run_id for r in st2.runs] == ["r0000"]
    st2.append_run(_entry("r0002"))
    assert [r.run_id for r in read_runs(tmp_path / "runs.jsonl")] == ["r0000", "r0002"]


def test_corrupt_middle_line_is_an_error(tmp_path):
    (tmp_path / "runs.jsonl").write_text(_entry("r0000").to_json() + "\nnot json\n" + _entry("r0001").to_json() + "\n")
    with pytest.raises(MixoptError, match="line 2"):
        read_runs(tmp_path / "runs.jsonl")


def test_run_appended_before_crash_is_not_pending(tmp_path):
    st = JobState.open(tmp_path, config_hash="h")
    st.add_pending(_launch("r0000"))
    # Simulate a crash after the append but before state.json dropped the launch.
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write(_entry("r0000").to_json() + "\n")
    st2 = JobState.open(tmp_path, config_hash="h")
    assert st2.pending_launches() == []
    assert len(st2.runs) == 1


def test_incompatible_config_is_refused(tmp_path):
    JobState.open(tmp_path, config_hash="aaa")
    with pytest.raises(ConfigError, match="different data/tokenizer/proxy/seed config"):
        JobState.open(tmp_path, config_hash="bbb")


def test_config_hash_ignores_budget_but_not_proxy():
    cfg = JobConfig.model_validate({"name": "j", "domains": {"a": "x", "b": "y"}})
    h = config_hash(cfg)
    more = cfg.model_copy(deep=True)
    more.budget.runs = 99
    more.search.strategy = "random"
    assert config_hash(more) == h
    other = cfg.model_copy(deep=True)
    other.proxy.tokens = 1234
    assert config_hash(other) != h


def test_retries_are_counted_and_cleared(tmp_path):
    st = JobState.open(tmp_path, config_hash="h")
    assert st.record_retry("r0000", "boom") == 1
    assert JobState.open(tmp_path, config_hash="h").record_retry("r0000", "again") == 2
    st = JobState.open(tmp_path, config_hash="h")
    assert st.retry_reasons("r0000") == ["boom", "again"]
    st.append_run(_entry("r0000", None, "failed"))
    assert st.retry_reasons("r0000") == []


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "state.json"
    atomic_write_text(p, json.dumps({"v": 1}))

    class Boom:
        def __str__(self):
            raise RuntimeError("serialisation failed")

    with pytest.raises(TypeError):
        atomic_write_text(p, Boom())  # not a string: the write fails before the replace
    assert json.loads(p.read_text()) == {"v": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_best_prefers_lowest_objective(tmp_path):
    st = JobState.open(tmp_path, config_hash="h")
    for rid, obj in [("r0", 3.0), ("r1", 1.5), ("r2", 2.0)]:
        st.append_run(_entry(rid, obj))
    st.append_run(_entry("r3", None, "failed"))
    assert st.best().run_id == "r1"
    assert [r.run_id for r in st.failed_runs] == ["r3"]
