"""The MoE expert op for CPUs: tokens sorted by expert, one matmul per expert slice, backward by hand.

On a CPU the expert op of a small MoE is bound by bookkeeping, not by its matmuls: the reference loop
builds a boolean mask per expert and copies the whole output per ``index_add``, and autograd records ~15
ops per expert. This path sorts the (token, slot) assignments by expert once, runs each expert on its
contiguous slice and does that slice's elementwise work right after its matmuls, while the slice is still
in cache (one pass per op over all assignments took 13-18% longer at moe-tiny shapes, 9% at moe-mid: it
streams every activation through memory again), combines with one in-place ``index_add_``, and writes the
backward by hand (SwiGLU derivative included).

    out[t] = sum_k  w[t, k] * down_e( silu(x[t] @ gate_e) * (x[t] @ up_e) ),   e = idx[t, k]

Used through ``moe_experts(..., impl="sorted")`` (see ``kernels/moe_experts.py``); on CPU it is what
``"auto"`` picks.

The slice matmuls run through oneDNN instead of ``torch.mm`` (MKL) where :mod:`kernels.linear` would use it
and the average slice has at least 2**23 multiply-adds (``MIXOPT_LINEAR_IMPL`` forces either): on the AMD
benchmark VM oneDNN is ~2x faster at moe-mid shapes (46M multiply-adds per slice) but slower at moe-tiny's
(2.9M: 72 calls per layer, each paying oneDNN's ~15 us of fixed cost, plus a copy into the slice buffer).
"""

from __future__ import annotations

import os

import torch

from mixopt.kernels.linear import matmul_nt, resolve_linear_impl

__all__ = ["sorted_moe_experts"]

_ONEDNN_SLICE_MACS = 1 << 23


def _use_onednn(x_SD: torch.Tensor, w_DF: torch.Tensor, n_spans: int) -> bool:
    """Whether this call's slice matmuls go through oneDNN (see the module docstring)."""
    forced = os.environ.get("MIXOPT_LINEAR_IMPL", "").strip()
    if forced == "reference":
        return False
    if resolve_linear_impl(forced or "auto", x_SD, w_DF.T) != "onednn":
        return False
    return bool(forced) or x_SD.shape[0] / max(n_spans, 1) * w_DF.shape[0] * w_DF.shape[1] >= _ONEDNN_SLICE_MACS


def _mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, onednn: bool) -> torch.Tensor:
    """``out = a @ b``."""
    if onednn:
        return out.copy_(matmul_nt(a, b.T, impl="onednn"))
    return torch.mm(a, b, out=out)


def sorted_moe_experts(x_TD: torch.Tensor, expert_idx_TK: torch.Tensor, weight_TK: torch.Tensor,
                       w_gate_EDF: torch.Tensor, w_up_EDF: torch.Tensor, w_down_EFD: torch.Tensor) -> torch.Tensor:
    """Routed SwiGLU experts; shapes as in :func:`kernels.moe_experts.moe_experts`. Returns (T, D)."""
    return _SortedExperts.apply(x_TD, expert_idx_TK, weight_TK.to(x_TD.dtype), w_gate_EDF, w_up_EDF, w_down_EFD)


class _SortedExperts(torch.autograd.Function):
    """Matmuls per expert slice (contiguous rows); each slice's elementwise work runs right after its
    matmuls, while the slice is still in cache."""

    @staticmethod
    def forward(ctx, x_TD, expert_idx_TK, weight_TK, w_gate_EDF, w_up_EDF, w_down_EFD):  # noqa: D401
        T, K = expert_idx_TK.shape
        E, F_ = w_gate_EDF.shape[0], w_gate_EDF.shape[2]
        flat_S = expert_idx_TK.reshape(-1)
        order_S = torch.argsort(flat_S, stable=True)                # assignment slots sorted by expert
        token_S = order_S // K
        bounds = [0, *torch.cumsum(torch.bincount(flat_S, minlength=E), 0).tolist()]
        spans = [(e, bounds[e], bounds[e + 1]) for e in range(E) if bounds[e + 1] > bounds[e]]
        x_SD = x_TD.index_select(0, token_S)
        w_S1 = weight_TK.reshape(-1).index_select(0, order_S).unsqueeze(1)
        gate_SF, up_SF, act_SF, h_SF = (x_SD.new_empty(x_SD.shape[0], F_) for _ in range(4))
        y_SD = torch.empty_like(x_SD)
        dnn = _use_onednn(x_SD, w_gate_EDF[0], len(spans))
        for e, a, b in spans:
            _mm(x_SD[a:b], w_gate_EDF[e], gate_SF[a:b], dnn)
            _mm(x_SD[a:b], w_up_EDF[e], up_SF[a:b], dnn)
            torch.ops.aten.silu.out(gate_SF[a:b], out=act_SF[a:b])
            torch.mul(act_SF[a:b], up_SF[a:b], out=h_SF[a:b])
            _mm(h_SF[a:b], w_down_EFD[e], y_SD[a:b], dnn)
        out_TD = torch.zeros_like(x_TD).index_add_(0, token_S, y_SD * w_S1)
        ctx.save_for_backward(x_SD, gate_SF, up_SF, act_SF, h_SF, y_SD, w_S1, token_S, order_S,
                              w_gate_EDF, w_up_EDF, w_down_EFD)
        ctx.spans, ctx.shape_TK, ctx.onednn = spans, (T, K), dnn
        return out_TD

    @staticmethod
    def backward(ctx, grad_out_TD):
        (x_SD, gate_SF, up_SF, act_SF, h_SF, y_SD, w_S1, token_S, order_S,
         w_gate_EDF, w_up_EDF, w_down_EFD) = ctx.saved_tensors
        spans, (T, K), dnn = ctx.spans, ctx.shape_TK, ctx.onednn
        g_out_SD = grad_out_TD.index_select(0, token_S)
        grad_weight_TK = None
        if ctx.needs_input_grad[2]:
            grad_w_S = torch.linalg.vecdot(g_out_SD, y_SD)
            grad_weight_TK = torch.empty_like(grad_w_S).index_copy_(0, order_S, grad_w_S).view(T, K)
        g_y_SD = g_out_SD.mul_(w_S1)
        grads = [torch.empty_like(w) for w in (w_gate_EDF, w_up_EDF, w_down_EFD)]
        if len(spans) < w_gate_EDF.shape[0]:  # an expert without tokens gets a zero gradient
            for g in grads:
                g.zero_()
        grad_gate_EDF, grad_up_EDF, grad_down_EFD = grads
        g_h_SF, g_up_SF = torch.empty_like(h_SF), torch.empty_like(h_SF)
        grad_x_SD = torch.empty_like(x_SD)
        for e, a, b in spans:
            _mm(h_SF[a:b].T, g_y_SD[a:b], grad_down_EFD[e], dnn)
            g_h = _mm(g_y_SD[a:b], w_down_EFD[e].T, g_h_SF[a:b], dnn)
            torch.mul(g_h, act_SF[a:b], out=g_up_SF[a:b])                 # d/d up = g_h * silu(gate)
            g_gate = torch.ops.aten.silu_backward.grad_input(g_h.mul_(up_SF[a:b]), gate_SF[a:b],
                                                             grad_input=g_h)  # g_h * up * silu'(gate)
            _mm(x_SD[a:b].T, g_gate, grad_gate_EDF[e], dnn)
            _mm(x_SD[a:b].T, g_up_SF[a:b], grad_up_EDF[e], dnn)
            _mm(g_gate, w_gate_EDF[e].T, grad_x_SD[a:b], dnn)
            if dnn:
                grad_x_SD[a:b].add_(matmul_nt(g_up_SF[a:b], w_up_EDF[e], impl="onednn"))
            else:
                grad_x_SD[a:b].addmm_(g_up_SF[a:b], w_up_EDF[e].T)
        grad_x_TD = torch.zeros_like(grad_out_TD).index_add_(0, token_S, grad_x_SD)
        return grad_x_TD, None, grad_weight_TK, grad_gate_EDF, grad_up_EDF, grad_down_EFD
