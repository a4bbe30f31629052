"""The MoE expert computation as one op: permute tokens by expert -> grouped SwiGLU matmuls -> combine.

Given T tokens, each routed to K experts with combine weights, compute

    out[t] = sum_k  w[t, k] * down_e( silu(x[t] @ gate_e) * (x[t] @ up_e) ),   e = idx[t, k]

Implementations (all dropless, all differentiable through torch autograd):

- ``"reference"``: a per-expert Python loop with boolean masks; the ground truth for tests.
- ``"bmm"``: sort assignments by expert, pad each expert's group to the largest group, three ``bmm`` s.
- ``"sorted"``: sort by expert, one matmul per expert slice (gate and up fused), a hand-written backward
  (``kernels/moe_sorted.py``). CPU only; there the bookkeeping, not the matmuls, bounds a small MoE.
- ``"grouped_mm"``: sort by expert, ``torch._grouped_mm`` with group offsets (no padding). Eligible on
  CPU (fp32/bf16, 16-byte-aligned rows) and CUDA sm90+ in bf16 when the op exists in this torch.
- ``"triton"``: not shipped (see docs/proxies.md); asking for it raises a clear error.
- ``"auto"``: the first eligible of sorted, grouped_mm, bmm.

Force one with ``moe_experts(..., impl="bmm")``, the ``use_impl("bmm")`` context manager, or the
``MIXOPT_MOE_IMPL`` environment variable (in that order of precedence).

>>> T, D, F, E, K = 6, 8, 4, 3, 2
>>> x = torch.randn(T, D); idx = torch.randint(0, E, (T, K)); w = torch.rand(T, K)
>>> gate, up, down = torch.randn(E, D, F), torch.randn(E, D, F), torch.randn(E, F, D)
>>> ref = moe_experts(x, idx, w, gate, up, down, impl="reference")
>>> torch.allclose(moe_experts(x, idx, w, gate, up, down, impl="bmm"), ref, atol=1e-5)
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from mixopt.kernels.errors import KernelError
from mixopt.kernels.moe_sorted import sorted_moe_experts

__all__ = ["IMPLS", "available_impls", "eligible", "moe_experts", "resolve_impl", "use_impl"]

IMPLS = ("reference", "bmm", "sorted", "grouped_mm", "triton")
_FORCED: list[str] = []


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Force one implementation for every ``moe_experts(impl="auto")`` call inside the block."""
    if impl not in IMPLS + ("auto",):
        raise KernelError(f"unknown MoE expert implementation {impl!r}; choose one of {IMPLS + ('auto',)}")
    _FORCED.append(impl)
    try:
        yield
    finally:
        _FORCED.pop()


def eligible(impl: str, x_TD: torch.Tensor, w_EDF: torch.Tensor) -> tuple[bool, str]:
    """Whether ``impl`` can run on these inputs; the reason when it cannot."""
    if impl in ("reference", "bmm"):
        return True, ""
    if impl == "sorted":
        return x_TD.device.type == "cpu", "the sorted path is for CPU (it loops over experts on the host)"
    if impl == "grouped_mm":
        if not hasattr(torch, "_grouped_mm"):
            return False, "torch._grouped_mm is not in this torch build"
        if x_TD.dtype != w_EDF.dtype:
            return False, "mixed dtypes"
        D, Fh = w_EDF.shape[1], w_EDF.shape[2]
        if (D * x_TD.element_size()) % 16 or (Fh * x_TD.element_size()) % 16:
            return False, "row strides must be multiples of 16 bytes"
        if x_TD.device.type == "cuda":
            if x_TD.dtype != torch.bfloat16:
                return False, "CUDA grouped_mm needs bf16"
            if torch.cuda.get_device_capability(x_TD.device) < (9, 0):
                return False, "CUDA grouped_mm needs sm90+"
            return True, ""
        if x_TD.device.type == "cpu":
            return (x_TD.dtype in (torch.float32, torch.bfloat16)), "CPU grouped_mm needs fp32 or bf16"
        return False, f"device {x_TD.device.type}"
    if impl == "triton":
        return False, "no Triton kernel is shipped in this version"
    return False, f"unknown implementation {impl!r}"


def available_impls(x_TD: torch.Tensor, w_EDF: torch.Tensor) -> list[str]:
    """Every implementation eligible for these inputs (the reference first)."""
    return [i for i in IMPLS if eligible(i, x_TD, w_EDF)[0]]


def resolve_impl(impl: str, x_TD: torch.Tensor, w_EDF: torch.Tensor) -> str:
    """The implementation that will run: forced ones are checked and raise when ineligible."""
    if impl == "auto":
        impl = _FORCED[-1] if _FORCED else os.environ.get("MIXOPT_MOE_IMPL", "auto") or "auto"
    if impl == "auto":
        for cand in ("sorted", "grouped_mm", "bmm"):
            if eligible(cand, x_TD, w_EDF)[0]:
                return cand
        return "reference"
    ok, why = eligible(impl, x_TD, w_EDF)
    if not ok:
        raise KernelError(f"MoE expert implementation {impl!r} is not available here: {why}")
    return impl


def moe_experts(x_TD: torch.Tensor, expert_idx_TK: torch.Tensor, weight_TK: torch.Tensor,
                w_gate_EDF: torch.Tensor, w_up_EDF: torch.Tensor, w_down_EFD: torch.Tensor, *,
                impl: str = "auto") -> torch.Tensor:
    """Apply routed SwiGLU experts. Returns ``out_TD`` (same dtype as ``x_TD``).

    x_TD: (T, D) tokens; expert_idx_TK: (T, K) int expert ids in [0, E); weight_TK: (T, K) combine weights;
    w_gate_EDF, w_up_EDF: (E, D, F); w_down_EFD: (E, F, D).
    """
    name = resolve_impl(impl, x_TD, w_gate_EDF)
    if name == "sorted":
        return sorted_moe_experts(x_TD, expert_idx_TK, weight_TK, w_gate_EDF, w_up_EDF, w_down_EFD)
    if name == "reference":
        return _reference(x_TD, expert_idx_TK, weight_TK, w_gate_EDF, w_up_EDF, w_down_EFD)
    T, K = expert_idx_TK.shape
    E = w_gate_EDF.shape[0]
    flat_idx = expert_idx_TK.reshape(-1)                          # (T*K,) assignment -> expert
    order = torch.argsort(flat_idx, stable=True)                  # assignments sorted by expert
    counts_E = torch.bincount(flat_idx, minlength=E)
    x_sorted_SD = x_TD[order // K]                                # (S=T*K, D) permuted tokens
    if name == "bmm":
        y_sorted_SD = _padded_bmm(x_sorted_SD, flat_idx[order], counts_E, w_gate_EDF, w_up_EDF, w_down_EFD)
    else:
        y_sorted_SD = _grouped(x_sorted_SD, counts_E, w_gate_EDF, w_up_EDF, w_down_EFD)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    y_TKD = y_sorted_SD[inverse].view(T, K, -1)                   # unpermute
    return (y_TKD * weight_TK.unsqueeze(-1).to(y_TKD.dtype)).sum(dim=1)


def _swiglu(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(x @ gate) * (x @ up)


def _reference(x_TD, expert_idx_TK, weight_TK, w_gate_EDF, w_up_EDF, w_down_EFD) -> torch.Tensor:
    """Per-expert loop: gather each expert's tokens, run its SwiGLU, scatter-add weighted outputs."""
    out_TD = torch.zeros_like(x_TD)
    for e in range(w_gate_EDF.shape[0]):
        tok, slot = torch.where(expert_idx_TK == e)
        if tok.numel() == 0:
            continue
        y_ND = _swiglu(x_TD[tok], w_gate_EDF[e], w_up_EDF[e]) @ w_down_EFD[e]
        out_TD = out_TD.index_add(0, tok, y_ND * weight_TK[tok, slot].unsqueeze(-1).to(y_ND.dtype))
    return out_TD


def _padded_bmm(x_SD, expert_of_S, counts_E, w_gate_EDF, w_up_EDF, w_down_EFD) -> torch.Tensor:
    """Sorted assignments scattered into an (E, C, D) buffer (C = largest group), three bmm's, gathered."""
    E, D = w_gate_EDF.shape[0], x_SD.shape[1]
    C = int(counts_E.max())
    starts_E = torch.cumsum(counts_E, 0) - counts_E
    pos_S = torch.arange(x_SD.shape[0], device=x_SD.device) - starts_E[expert_of_S]
    slot_S = expert_of_S * C + pos_S                              # row in the flattened (E*C) buffer
    x_ECD = x_SD.new_zeros(E * C, D).index_copy(0, slot_S, x_SD).view(E, C, D)
    h_ECF = F.silu(torch.bmm(x_ECD, w_gate_EDF)) * torch.bmm(x_ECD, w_up_EDF)
    y_ECD = torch.bmm(h_ECF, w_down_EFD)
    return y_ECD.reshape(E * C, -1)[slot_S]


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (grouped_mm's backward needs it)."""

    @staticmethod
    def forward(ctx, x):  # noqa: D401
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


def _grouped(x_SD, counts_E, w_gate_EDF, w_up_EDF, w_down_EFD) -> torch.Tensor:
    """``torch._grouped_mm`` over contiguous expert groups given by cumulative offsets."""
    offs_E = torch.cumsum(counts_E, 0).to(torch.int32)

    def gmm(a, w):
        return _ContiguousGrad.apply(torch._grouped_mm(a.contiguous(), w, offs=offs_E))

    h_SF = F.silu(gmm(x_SD, w_gate_EDF)) * gmm(x_SD, w_up_EDF)
    return gmm(h_SF, w_down_EFD)
