"""Every MoE expert implementation matches the per-expert reference, outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from mixopt.kernels import available_impls, eligible, moe_experts, resolve_impl, use_impl
from mixopt.kernels.errors import KernelError
from mixopt.kernels.testing import requires_cuda, requires_sm90, requires_triton


def _inputs(T=96, D=16, F=24, E=6, K=2, dtype=torch.float64, device="cpu", seed=0, skew=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, E, generator=g)
    if skew:  # most tokens on expert 0, some experts get nothing
        logits[:, 0] += 4.0
        logits[:, E - 1] -= 100.0
    probs = logits.softmax(-1)
    top_p, idx = torch.topk(probs, K, dim=-1)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)  # noqa: E731
    tensors = [mk(T, D), (top_p / top_p.sum(-1, keepdim=True)).to(dtype=dtype, device=device),
               mk(E, D, F) / D**0.5, mk(E, D, F) / D**0.5, mk(E, F, D) / F**0.5]
    return idx.to(device), [t.requires_grad_() for t in tensors]


def _run(impl, idx, tensors):
    x, w, gate, up, down = tensors
    out = moe_experts(x, idx, w, gate, up, down, impl=impl)
    upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)
    grads = torch.autograd.grad((out * upstream).sum(), tensors)
    return out, grads


def _check(impl, idx, tensors, **tol):
    ref_out, ref_grads = _run("reference", idx, tensors)
    out, grads = _run(impl, idx, tensors)
    torch.testing.assert_close(out, ref_out, **tol)
    for name, g, rg in zip(["x", "weight", "gate", "up", "down"], grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg, **tol, msg=lambda m, n=name: f"grad of {n}: {m}")


CPU_IMPLS = [i for i in ("bmm", "sorted", "grouped_mm") if i in available_impls(torch.zeros(1, 16), torch.zeros(1, 16, 24))]


def test_bmm_and_sorted_are_always_available_on_cpu():
    assert "bmm" in CPU_IMPLS and "sorted" in CPU_IMPLS and "reference" in available_impls(torch.zeros(1, 16), torch.zeros(1, 16, 24))


@pytest.mark.parametrize("impl", ["bmm", "sorted"])
@pytest.mark.parametrize(("K", "skew"), [(1, False), (2, False), (2, True), (3, True)])
def test_bmm_and_sorted_match_the_reference_in_float64(impl, K, skew):
    idx, tensors = _inputs(K=K, skew=skew)                             # (grouped_mm is fp32/bf16 only)
    assert not eligible("grouped_mm", tensors[0], tensors[2])[0]
    _check(impl, idx, tensors, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("linear_impl", ["onednn", "reference"])
@pytest.mark.parametrize("skew", [False, True])
def test_sorted_matches_the_reference_in_float32_with_either_matmul_library(monkeypatch, linear_impl, skew):
    from mixopt.kernels.linear import onednn_available

    if linear_impl == "onednn" and not onednn_available():
        pytest.skip("this torch build has no working oneDNN linear op")
    monkeypatch.setenv("MIXOPT_LINEAR_IMPL", linear_impl)  # forces the slice matmuls' library
    idx, tensors = _inputs(T=200, D=32, F=48, K=2, dtype=torch.float32, skew=skew)
    _check("sorted", idx, tensors, rtol=1e-4, atol=1e-5)


def test_sorted_runs_in_bfloat16_close_to_the_reference():
    idx, tensors = _inputs(K=2, dtype=torch.bfloat16)
    _check("sorted", idx, tensors, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize(("K", "skew"), [(1, False), (2, False), (2, True), (4, True)])
def test_cpu_impls_match_the_reference_in_float32(impl, K, skew):
    idx, tensors = _inputs(K=K, skew=skew, dtype=torch.float32)
    _check(impl, idx, tensors, rtol=1e-5, atol=1e-6)                   # fp32 rounding only


def test_empty_experts_get_zero_gradient():
    idx, tensors = _inputs(skew=True, dtype=torch.float32)
    assert not (idx == 5).any()
    for impl in CPU_IMPLS:
        _, (_, _, g_gate, g_up, g_down) = _run(impl, idx, tensors)
        assert g_gate[5].abs().sum() == 0 and g_down[5].abs().sum() == 0
        assert g_up[0].abs().sum() > 0


def test_forcing_an_implementation():
    x, w = torch.zeros(4, 16), torch.zeros(2, 16, 24)
    assert resolve_impl("auto", x, w) == "sorted"                       # the CPU default
    with use_impl("reference"):
        assert resolve_impl("auto", x, w) == "reference"
        assert resolve_impl("bmm", x, w) == "bmm"                     # an explicit argument wins
    with pytest.raises(KernelError, match="unknown MoE expert implementation"), use_impl("fast"):
        pass


def test_environment_variable_forces_the_implementation(monkeypatch):
    x, w = torch.zeros(4, 16), torch.zeros(2, 16, 24)
    monkeypatch.setenv("MIXOPT_MOE_IMPL", "bmm")
    assert resolve_impl("auto", x, w) == "bmm"
    with use_impl("reference"):                                         # the context manager wins
        assert resolve_impl("auto", x, w) == "reference"


def test_ineligible_implementations_fall_back_or_raise():
    x_odd, w_odd = torch.zeros(4, 6), torch.zeros(2, 6, 10)            # 24-byte rows: not 16-byte aligned
    assert not eligible("grouped_mm", x_odd, w_odd)[0]
    assert resolve_impl("auto", x_odd, w_odd) == "sorted"
    with pytest.raises(KernelError, match="'grouped_mm' is not available here"):
        resolve_impl("grouped_mm", x_odd, w_odd)
    with pytest.raises(KernelError, match="'triton' is not available here"):
        resolve_impl("triton", torch.zeros(4, 16), torch.zeros(2, 16, 24))


# --- GPU paths: skipped on machines without CUDA ----------------------------------------------------

@requires_cuda
@pytest.mark.parametrize("impl", ["bmm", "grouped_mm"])
def test_cuda_bf16_impls_match_the_fp32_reference(impl):
    x = torch.zeros(1, 64, device="cuda", dtype=torch.bfloat16)
    if not eligible(impl, x, x.new_zeros(1, 64, 128))[0]:
        pytest.skip(f"{impl} not eligible on this GPU")
    idx, ref_tensors = _inputs(T=512, D=64, F=128, E=8, K=2, dtype=torch.float32, device="cuda")
    ref_out, ref_grads = _run("reference", idx, ref_tensors)
    bf16 = [t.detach().to(torch.bfloat16).requires_grad_() for t in ref_tensors]
    out, grads = _run(impl, idx, bf16)
    torch.testing.assert_close(out.float(), ref_out, rtol=1e-2, atol=1e-2)
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.float(), rg, rtol=1e-2, atol=2e-2)


@requires_sm90
def test_auto_uses_grouped_mm_on_hopper_in_bf16():
    x = torch.zeros(4, 64, device="cuda", dtype=torch.bfloat16)
    assert resolve_impl("auto", x, x.new_zeros(2, 64, 128)) == "grouped_mm"


@requires_triton
def test_triton_is_reported_unavailable_until_a_kernel_ships():
    x = torch.zeros(4, 64, device="cuda", dtype=torch.bfloat16)
    assert "triton" not in available_impls(x, x.new_zeros(2, 64, 128))
