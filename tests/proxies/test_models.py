"""Dense and MoE proxy models: shapes, causality, router losses, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixopt.proxies import ProxyConfig, build_model
from mixopt.proxies.dense import Rotary, SwiGLU, apply_rotary
from mixopt.proxies.moe import MoEFeedForward, Router, router_losses


def _model(name: str, vocab: int = 97, seed: int = 0, **changes):
    torch.manual_seed(seed)
    return build_model(ProxyConfig.preset(name).replace(**changes).with_vocab(vocab))


@pytest.mark.parametrize("name", ["dense-tiny", "moe-tiny"])
def test_forward_shapes_and_finite_initial_loss_near_uniform(name):
    model = _model(name)
    idx = torch.randint(0, 97, (3, 21), generator=torch.Generator().manual_seed(0))
    out = model(idx[:, :-1])
    assert out.logits_BTV.shape == (3, 20, 97) and out.aux_loss.shape == ()
    loss = F.cross_entropy(out.logits_BTV.reshape(-1, 97), idx[:, 1:].reshape(-1)).item()
    assert abs(loss - torch.log(torch.tensor(97.0)).item()) < 0.2       # small init: near-uniform logits
    if name == "moe-tiny":
        assert out.aux_loss.item() > 0
    else:
        assert out.aux_loss.item() == 0.0


@pytest.mark.parametrize("name", ["dense-tiny", "moe-tiny"])
def test_logits_are_causal(name):
    model = _model(name).eval()
    idx = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 97
    a, b = model(idx).logits_BTV, model(changed).logits_BTV
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_sequences_longer_than_max_seq_len_are_refused():
    model = _model("dense-tiny", max_seq_len=8)
    with pytest.raises(ValueError, match="exceeds max_seq_len 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("name", ["dense-tiny", "moe-tiny"])
def test_loss_decreases_on_a_learnable_sequence(name):
    model = _model(name, vocab=32)
    idx = (torch.arange(65) * 7 % 32).repeat(4, 1)                      # a deterministic cycle
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(idx[:, :-1])
        loss = F.cross_entropy(out.logits_BTV.reshape(-1, 32), idx[:, 1:].reshape(-1))
        opt.zero_grad()
        (loss + out.aux_loss).backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_balanced_router_has_minimal_balance_loss_and_collapse_costs_more():
    E, N = 8, 4096
    g = torch.Generator().manual_seed(0)
    # balanced: uniform probabilities, assignments spread evenly over experts
    logits = torch.zeros(N, E)
    idx = torch.arange(N * 2).reshape(N, 2) % E
    balance, z = router_losses(logits, logits.softmax(-1), idx)
    assert balance.item() == pytest.approx(1.0, abs=1e-6)
    assert z.item() == pytest.approx(torch.log(torch.tensor(8.0)).item() ** 2, rel=1e-6)
    # random router on random tokens: close to balanced
    router = Router(32, E, top_k=2)
    torch.nn.init.normal_(router.gate.weight, std=0.02, generator=g)
    r = router(torch.randn(N, 32, generator=g))
    assert 1.0 <= r.balance_loss.item() < 1.05
    # collapsed: every token prefers expert 0 -> loss near E/K = 4
    x = torch.randn(N, 32, generator=g).abs() + 1
    with torch.no_grad():
        router.gate.weight.zero_()
        router.gate.weight[0] = 5.0
    collapsed = router(x)
    assert (collapsed.expert_idx_NK[:, 0] == 0).all()
    assert collapsed.balance_loss.item() > 3.5 and collapsed.z_loss.item() > r.z_loss.item()


def test_moe_layer_adds_weighted_router_losses_and_routes_gradients():
    cfg = ProxyConfig.preset("moe-tiny").with_vocab(50)
    torch.manual_seed(0)
    ffn = MoEFeedForward(cfg)
    for p in (ffn.router.gate.weight, ffn.w_gate_EDF, ffn.w_up_EDF, ffn.w_down_EFD):
        torch.nn.init.normal_(p, std=0.02)                              # as Transformer.reset_parameters
    x = torch.randn(2, 64, cfg.d_model)
    y, aux = ffn(x)
    stats = ffn.last_stats
    expected = cfg.aux_loss_weight * stats["balance_loss"] + cfg.z_loss_weight * stats["z_loss"]
    assert aux.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["balance_loss"].item() == pytest.approx(1.0, abs=0.15)  # near balance at init
    assert stats["z_loss"].item() == pytest.approx(torch.log(torch.tensor(8.0)).item() ** 2, rel=0.05)
    (y.pow(2).sum() + aux).backward()
    assert ffn.router.gate.weight.grad.abs().sum() > 0                  # router learns via combine weights
    used = torch.unique(ffn.router(x.reshape(-1, cfg.d_model)).expert_idx_NK)
    grads = ffn.w_up_EDF.grad.abs().sum(dim=(1, 2))
    assert (grads[used] > 0).all()


def test_same_seed_same_weights():
    a, b = _model("moe-tiny", seed=5), _model("moe-tiny", seed=5)
    c = _model("moe-tiny", seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_moe_under_bf16_autocast_runs_experts_in_bf16_and_stays_close_to_fp32():
    model = _model("moe-tiny", vocab=64).eval()
    idx = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(2))
    ref = model(idx).logits_BTV
    with torch.autocast("cpu", dtype=torch.bfloat16):                  # the CUDA bf16 path, on CPU
        out = model(idx)
    assert out.logits_BTV.dtype == torch.bfloat16 and out.aux_loss.dtype == torch.float32
    torch.testing.assert_close(out.logits_BTV.float(), ref, rtol=0.05, atol=0.05)


def test_rotary_is_the_pairwise_rotation_by_position_dependent_angles():
    K, T, theta = 8, 5, 10_000.0
    x = torch.randn(2, 3, T, K, generator=torch.Generator().manual_seed(0))
    angles = torch.outer(torch.arange(T, dtype=torch.float32),
                         1.0 / theta ** (torch.arange(0, K, 2, dtype=torch.float32) / K))
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x.chunk(2, dim=-1)
    expected = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    assert torch.equal(apply_rotary(x, *Rotary(K, 16, theta)(T)), expected)  # same fp32 values, not just close


def test_swiglu_matches_the_fused_formula_in_output_and_gradients():
    torch.manual_seed(0)
    ffn = SwiGLU(16, 24)
    x = torch.randn(3, 5, 16, requires_grad=True)
    up = torch.randn(3, 5, 16)
    ffn(x).backward(up)
    got = (x.grad.clone(), ffn.w_gate_up.weight.grad.clone(), ffn.w_down.weight.grad.clone())
    x.grad, ffn.w_gate_up.weight.grad, ffn.w_down.weight.grad = None, None, None
    gate, u = (x @ ffn.w_gate_up.weight.T).chunk(2, dim=-1)
    y = (F.silu(gate) * u) @ ffn.w_down.weight.T
    y.backward(up)
    torch.testing.assert_close(ffn(x), y)
    for g, r in zip(got, (x.grad, ffn.w_gate_up.weight.grad, ffn.w_down.weight.grad), strict=True):
        torch.testing.assert_close(g, r)
