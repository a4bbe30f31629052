"""train_proxy on the real demo corpus: mixture response, determinism, failures, records."""

from __future__ import annotations

import math

import pytest
import torch

from mixopt.errors import DataError, MixoptError
from mixopt.proxies import ProxyConfig, RunRecord, TrainSettings, train_proxy

FAST = TrainSettings(seq_len=32, batch_size=8, eval_points=3, eval_tokens=1024)


def _mix(data, domain: str, weight: float) -> dict[str, float]:
    rest = (1 - weight) / (len(data.domains) - 1)
    return {d: weight if d == domain else rest for d in data.domains}


def test_per_domain_losses_differ_by_domain_and_respond_to_the_mixture(demo_prepared):
    settings = TrainSettings(seq_len=64, batch_size=16, eval_points=3, eval_tokens=2048)
    runs = {w: train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, _mix(demo_prepared, "arithmetic", w),
                           tokens=40_000, seed=0, settings=settings, threads=1) for w in (0.6, 0.05)}
    hi, lo = runs[0.6], runs[0.05]
    assert hi.ok and lo.ok, (hi.reason, lo.reason)
    # more weight on a domain -> lower validation loss on it (by a wide margin) ...
    assert hi.final_loss["arithmetic"] < lo.final_loss["arithmetic"] - 0.5
    # ... and less weight elsewhere -> higher loss on the other domains on average
    others = [d for d in demo_prepared.domains if d != "arithmetic"]
    assert sum(hi.final_loss[d] for d in others) > sum(lo.final_loss[d] for d in others)
    # domains are not equally hard
    losses = sorted(lo.final_loss.values())
    assert losses[-1] - losses[0] > 0.3
    # losses fall over the evaluation points, which are log-spaced and end at the last step
    assert hi.steps[-1] == hi.extra["total_steps"] == 40_000 // (64 * 16)
    assert hi.tokens_seen == [s * 64 * 16 for s in hi.steps]
    assert hi.val_loss["arithmetic"][-1] < hi.val_loss["arithmetic"][0]
    assert hi.tokens_per_s > 0 and hi.wall_time > 0


@pytest.mark.parametrize("preset", ["dense-tiny", "moe-tiny"])
def test_same_seed_gives_bit_identical_losses(demo_prepared, preset):
    cfg = ProxyConfig.preset(preset)
    a = train_proxy(cfg, demo_prepared, demo_prepared.prior(), tokens=4096, seed=7, settings=FAST, threads=1)
    b = train_proxy(cfg, demo_prepared, demo_prepared.prior(), tokens=4096, seed=7, settings=FAST, threads=1)
    c = train_proxy(cfg, demo_prepared, demo_prepared.prior(), tokens=4096, seed=8, settings=FAST, threads=1)
    assert a.ok and b.ok and c.ok
    assert a.val_loss == b.val_loss and a.extra["train_loss"] == b.extra["train_loss"]
    assert a.val_loss != c.val_loss
    if preset == "moe-tiny":
        assert a.extra["moe_impl"] == "sorted" and 1.0 <= a.extra["router_balance_loss"] < 3


def test_run_record_fields_and_json_round_trip(demo_prepared):
    cfg = ProxyConfig.preset("moe-tiny")
    weights = [1, 1, 1, 1, 0, 0]
    with pytest.warns(UserWarning):                                    # renormalised, with a warning
        r = train_proxy(cfg, demo_prepared, weights, tokens=5000, seed=1, settings=FAST, threads=1)
    assert r.ok and r.status == "ok" and r.reason is None
    assert r.weights == {d: (0.25 if i < 4 else 0.0) for i, d in enumerate(demo_prepared.domains)}
    assert (r.preset, r.seed, r.tokens) == ("moe-tiny", 1, 5000)
    assert r.extra["tokens_trained"] == (5000 // 256) * 256
    sized = cfg.with_vocab(demo_prepared.vocab_size)
    counts = sized.param_counts()
    assert (r.n_params, r.n_active_params, r.n_nonembed_params) == (
        counts["total"], counts["active"], counts["non_embedding"])
    assert r.flops == pytest.approx(sized.flops_per_token(32) * r.extra["tokens_trained"])
    assert set(r.final_loss) == set(demo_prepared.domains)
    assert all(len(v) == len(r.steps) for v in r.val_loss.values())
    assert RunRecord.from_json(r.to_json()) == r


@pytest.mark.parametrize("lr", [1e3, 30.0])
def test_a_diverging_run_returns_a_failed_record(demo_prepared, lr):
    r = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=8192, seed=0,
                    settings=TrainSettings(seq_len=32, batch_size=8, lr=lr, eval_points=3, eval_tokens=512),
                    threads=1)
    assert r.status == "failed" and not r.ok
    assert "non-finite" in r.reason or "exploded" in r.reason
    assert r.final_loss == {} and r.steps[-1] < r.extra["total_steps"]
    assert RunRecord.from_json(r.to_json()).reason == r.reason


def test_max_loss_stops_the_run(demo_prepared):
    r = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=4096, seed=0,
                    settings=TrainSettings(seq_len=32, batch_size=8, max_loss=1.0), threads=1)
    assert r.status == "failed" and r.reason.startswith("training loss") and "max_loss 1" in r.reason


def test_an_error_inside_training_is_recorded_not_raised(demo_prepared):
    # validation windows longer than the held-out split: the data layer raises inside the run
    too_long = TrainSettings(seq_len=40_000, batch_size=1, eval_points=1)
    r = train_proxy(ProxyConfig.preset("dense-tiny").replace(max_seq_len=8), demo_prepared,
                    demo_prepared.prior(), tokens=40_001, seed=0, settings=too_long, threads=1)
    assert r.status == "failed" and r.reason.startswith("DataError:") and "validation split" in r.reason


def test_bad_input_is_a_one_line_error_before_training(demo_prepared):
    with pytest.raises(DataError):
        train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, [1, -1, 0, 0, 0, 1], tokens=4096, seed=0)
    with pytest.raises(MixoptError, match="less than one step"):
        train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=100, seed=0)
    if not torch.cuda.is_available():
        with pytest.raises(MixoptError, match="CUDA is not available"):
            train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=4096,
                        seed=0, device="cuda")


def test_threads_are_set_for_the_run_and_restored(demo_prepared):
    torch.set_num_threads(2)                                           # the autouse fixture restores it
    r = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=512, seed=0,
                    settings=FAST, threads=1)
    assert r.ok and r.extra["threads"] == 1 and torch.get_num_threads() == 2


def test_cpu_runs_ignore_bf16_and_compile(demo_prepared):
    s = TrainSettings(seq_len=32, batch_size=8, eval_points=1, eval_tokens=512, dtype="bf16", compile=True)
    r = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=512, seed=0,
                    settings=s, threads=1)
    assert r.ok and r.extra["dtype"] == "fp32" and r.extra["compile"] is False
    assert all(math.isfinite(v) for v in r.final_loss.values())


def test_reading_losses_back_in_batches_changes_nothing_but_when(demo_prepared, monkeypatch):
    """On a GPU the trainer reads losses back every 16 steps; the run and its failures stay the same."""
    from mixopt.proxies import trainer

    every_step = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=2560,
                             seed=3, settings=FAST, threads=1)
    monkeypatch.setitem(trainer._SYNC_EVERY, "cpu", 4)
    batched = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=2560,
                          seed=3, settings=FAST, threads=1)
    assert batched.ok and batched.val_loss == every_step.val_loss
    assert batched.extra["train_loss"] == every_step.extra["train_loss"]
    # a divergence in the middle of a batch of steps is reported at the step where it happened
    diverging = TrainSettings(seq_len=32, batch_size=8, lr=30.0, eval_points=3, eval_tokens=512)
    monkeypatch.setitem(trainer._SYNC_EVERY, "cpu", 1)
    once = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=8192, seed=0,
                       settings=diverging, threads=1)
    monkeypatch.setitem(trainer._SYNC_EVERY, "cpu", 4)
    late = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, demo_prepared.prior(), tokens=8192, seed=0,
                       settings=diverging, threads=1)
    assert once.status == late.status == "failed" and late.reason == once.reason
    step = int(once.reason.rsplit("at step ", 1)[1])
    assert step > 1 and step % 4 != 0  # so the batched run found it inside a batch, not at a read-back
