"""Presets, parameter counts, FLOPs and trainer settings."""

from __future__ import annotations

import pytest

from mixopt.config import JobConfig
from mixopt.errors import ConfigError
from mixopt.proxies import PRESETS, ProxyConfig, TrainSettings, build_model

SIZES = ["tiny", "small", "mid", "20m", "60m", "150m", "400m", "1b"]


def test_every_size_has_a_dense_and_a_moe_preset_with_matched_active_params():
    for size in SIZES:
        dense, moe = ProxyConfig.preset(f"dense-{size}"), ProxyConfig.preset(f"moe-{size}")
        d, m = dense.param_counts(), moe.param_counts()
        assert not dense.is_moe and moe.is_moe
        assert m["active"] == pytest.approx(d["active"], rel=0.01)       # matched active parameters
        assert m["total"] > 1.5 * d["total"]                              # but more parameters in total
        assert moe.flops_per_token() == pytest.approx(dense.flops_per_token(), rel=0.01)


@pytest.mark.parametrize(("name", "lo", "hi"), [
    ("dense-tiny", 0.3e6, 0.5e6), ("dense-small", 0.8e6, 2e6), ("dense-mid", 5e6, 20e6), ("dense-20m", 15e6, 30e6),
    ("dense-60m", 45e6, 75e6), ("dense-150m", 110e6, 190e6), ("dense-400m", 320e6, 480e6),
    ("dense-1b", 0.8e9, 1.3e9),
])
def test_preset_sizes_match_their_names(name, lo, hi):
    assert lo <= ProxyConfig.preset(name).param_counts()["total"] <= hi


@pytest.mark.parametrize("name", ["dense-tiny", "moe-tiny", "dense-small", "moe-small"])
def test_param_counts_match_the_built_model(name):
    cfg = ProxyConfig.preset(name).with_vocab(777)
    model = build_model(cfg)
    counts = cfg.param_counts()
    assert sum(p.numel() for p in model.parameters()) == counts["total"]
    assert counts["total"] - counts["non_embedding"] == 777 * cfg.d_model  # tied: one V x D matrix


def test_untied_embeddings_count_the_head_and_moe_every_alternates_layers():
    cfg = ProxyConfig.preset("moe-tiny").replace(tie_embeddings=False, moe_every=2).with_vocab(300)
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == cfg.param_counts()["total"]
    kinds = [type(b.ffn).__name__ for b in model.blocks]
    assert kinds == ["SwiGLU", "MoEFeedForward", "SwiGLU", "MoEFeedForward"]


def test_flops_per_token_is_six_n_plus_attention():
    cfg = ProxyConfig.preset("dense-tiny").with_vocab(2048)
    n = cfg.param_counts()["non_embedding"] + 2048 * cfg.d_model  # + the output head matmul
    assert cfg.flops_per_token(128) == 6 * n + 6 * cfg.n_layers * 128 * cfg.d_model
    assert cfg.flops_per_token(256) > cfg.flops_per_token(128)


def test_with_vocab_and_round_trip():
    cfg = ProxyConfig.preset("moe-small").with_vocab(4096)
    assert cfg.vocab_size == 4096 and PRESETS["moe-small"].vocab_size == 2048  # presets are not mutated
    assert ProxyConfig.from_dict(cfg.to_dict()) == cfg
    assert ProxyConfig.dense_tiny() == ProxyConfig.preset("dense-tiny")


def test_bad_presets_and_shapes_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown proxy preset 'dense-huge'"):
        ProxyConfig.preset("dense-huge")
    with pytest.raises(ConfigError, match="head dim"):
        ProxyConfig(d_model=60, n_heads=7)
    with pytest.raises(ConfigError, match="top_k"):
        ProxyConfig(n_experts=4, top_k=5, expert_d_ff=16)


def test_train_settings_map_from_the_job_config():
    job = JobConfig.model_validate({"name": "j", "domains": {"a": "x", "b": "y"},
                                    "proxy": {"seq_len": 64, "batch_size": 4, "lr": 1e-3, "schedule": "wsd",
                                              "eval_points": 3, "eval_tokens": 1024}})
    s = TrainSettings.from_job(job.proxy, grad_clip=0.5)
    assert (s.seq_len, s.batch_size, s.lr, s.schedule, s.eval_points, s.eval_tokens, s.grad_clip) == (
        64, 4, 1e-3, "wsd", 3, 1024, 0.5)
    assert TrainSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ConfigError):
        TrainSettings(warmup=1.5)
    with pytest.raises(ConfigError):
        TrainSettings(schedule="linear")
