"""The proxy trainer on a CUDA GPU: fp32 agrees with the CPU, bf16 and torch.compile train, MoE uses the GPU path.

Skipped on machines without CUDA; `experiments/gpu_check.sh` runs them (with the MFU benchmark) on a GPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixopt.kernels import linear_cross_entropy, resolve_lce_impl
from mixopt.kernels.testing import requires_cuda, requires_sm90
from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy

pytestmark = requires_cuda

SETTINGS = dict(seq_len=64, batch_size=16, eval_points=2, eval_tokens=2048)


def _run(data, preset="dense-tiny", tokens=16_384, device="cuda", **settings):
    return train_proxy(ProxyConfig.preset(preset), data, data.prior(), tokens=tokens, seed=0,
                       settings=TrainSettings(**(SETTINGS | settings)), threads=1, device=device)


def test_cuda_fp32_agrees_with_the_cpu_run(demo_prepared):
    gpu, cpu = _run(demo_prepared), _run(demo_prepared, device="cpu")
    assert gpu.ok and cpu.ok, (gpu.reason, cpu.reason)
    assert gpu.extra["device"] == "cuda" and gpu.extra["dtype"] == "fp32" and not gpu.extra["fused_head"]
    for d in demo_prepared.domains:  # same init, same batches; only kernel rounding differs
        assert gpu.final_loss[d] == pytest.approx(cpu.final_loss[d], rel=2e-3)


def test_bf16_trains_close_to_fp32(demo_prepared):
    fp32, bf16 = _run(demo_prepared), _run(demo_prepared, dtype="bf16")
    assert bf16.ok and bf16.extra["dtype"] == "bf16", bf16.reason
    for d in demo_prepared.domains:
        assert math.isfinite(bf16.final_loss[d])
        assert bf16.final_loss[d] == pytest.approx(fp32.final_loss[d], rel=0.03)
    assert bf16.final_loss[demo_prepared.domains[0]] < bf16.val_loss[demo_prepared.domains[0]][0] + 1e-6


def test_compile_trains_like_eager(demo_prepared):
    eager, compiled = _run(demo_prepared, dtype="bf16"), _run(demo_prepared, dtype="bf16", compile=True)
    assert compiled.ok and compiled.extra["compile"] is True, compiled.reason
    for d in demo_prepared.domains:
        assert compiled.final_loss[d] == pytest.approx(eager.final_loss[d], rel=0.03)


@requires_sm90
def test_moe_bf16_uses_grouped_mm_on_hopper(demo_prepared):
    r = _run(demo_prepared, preset="moe-tiny", dtype="bf16")
    assert r.ok and r.extra["moe_impl"] == "grouped_mm", r.reason
    assert all(math.isfinite(v) for v in r.final_loss.values())


def test_linear_cross_entropy_uses_the_reference_on_cuda():
    h = torch.randn(64, 32, device="cuda", requires_grad=True)
    w = torch.randn(100, 32, device="cuda", requires_grad=True)
    t = torch.randint(0, 100, (64,), device="cuda")
    assert resolve_lce_impl("auto", h, w) == "reference"
    torch.testing.assert_close(linear_cross_entropy(h, w, t), F.cross_entropy(h @ w.T, t))
