"""The output layer and the next-token loss as one op: ``cross_entropy(h @ W.T, target)`` in row chunks.

A proxy's output layer is its biggest matmul, and the plain path materialises the (N, V) logits, then a
log-softmax of the same size, then (in backward) a zero-filled one-hot gradient and the log-softmax
gradient: four passes over a tensor that does not fit in cache. The fused path takes the rows a chunk at
a time (a chunk of logits is ~2 MiB, so it stays in cache), computes the loss *and* the gradients of
``h`` and ``W`` during the forward, and keeps only those two (N, D) and (V, D) gradients for backward
(the Liger-Kernel / "cut cross-entropy" idea, here in plain PyTorch ops).

Implementations:

- ``"reference"``: ``F.cross_entropy(h @ W.T, target)``; the ground truth for tests, and the path under
  autocast or on CUDA (where ``torch.compile`` fuses the loss instead).
- ``"chunked"``: the fused chunk loop above, for fp32 tensors on CPU.
- ``"auto"``: ``"chunked"`` where eligible, else ``"reference"``.

>>> h = torch.randn(6, 4, requires_grad=True); w = torch.randn(10, 4); t = torch.randint(0, 10, (6,))
>>> ref = F.cross_entropy(h @ w.T, t)
>>> torch.allclose(linear_cross_entropy(h, w, t, impl="chunked"), ref, atol=1e-6)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mixopt.kernels.errors import KernelError
from mixopt.kernels.linear import cpu_fp32_problem, matmul_nt, resolve_linear_impl

__all__ = ["LCE_IMPLS", "linear_cross_entropy", "resolve_lce_impl"]

LCE_IMPLS = ("reference", "chunked")
_CHUNK_BYTES = 2 << 20  # logits per chunk: 2 MiB, about one core's L2 on the machines we run on
# ...but at least this many rows per hidden unit: every chunk reads and writes the whole (D, V) weight-gradient
# accumulator, which for a wide model costs more than the chunk's logits (D = 256, V = 2048, Intel Xeon, op
# fwd+bwd: 87 ms at 256 rows, 80 at 1024; D = 64 keeps 256 rows)
_ROWS_PER_DIM = 4


def resolve_lce_impl(impl: str, h_ND: torch.Tensor, w_VD: torch.Tensor) -> str:
    """The implementation that will run; a forced ``"chunked"`` that cannot run raises ``KernelError``."""
    if impl not in LCE_IMPLS + ("auto",):
        raise KernelError(f"unknown linear cross-entropy implementation {impl!r}; choose one of "
                          f"{LCE_IMPLS + ('auto',)}")
    why = _ineligible(h_ND, w_VD)
    if impl == "auto":
        return "reference" if why else "chunked"
    if impl == "chunked" and why:
        raise KernelError(f"linear cross-entropy 'chunked' is not available here: {why}")
    return impl


def linear_cross_entropy(h_ND: torch.Tensor, w_VD: torch.Tensor, target_N: torch.Tensor, *,
                         reduction: str = "mean", impl: str = "auto", chunk_rows: int | None = None) -> torch.Tensor:
    """Next-token cross-entropy of the logits ``h_ND @ w_VD.T`` (nats), without keeping the logits.

    h_ND: (N, D) final hidden states; w_VD: (V, D) output weights (the tied embedding is fine);
    target_N: (N,) int64 token ids in [0, V). reduction: "mean" (a scalar), "sum" (a scalar) or "none"
    ((N,) per-row losses; only without gradients). chunk_rows: rows per chunk (default: ~2 MiB of logits, at least 4 D rows).
    Gradients flow to ``h_ND`` and ``w_VD`` for "mean" and "sum".
    """
    if reduction not in ("mean", "sum", "none"):
        raise KernelError(f"unknown reduction {reduction!r}; choose 'mean', 'sum' or 'none'")
    if h_ND.dim() != 2 or w_VD.dim() != 2 or h_ND.shape[1] != w_VD.shape[1] or target_N.shape != h_ND.shape[:1]:
        raise KernelError(f"shapes do not fit: h {tuple(h_ND.shape)}, w {tuple(w_VD.shape)}, "
                          f"target {tuple(target_N.shape)}; expected (N, D), (V, D), (N,)")
    name = resolve_lce_impl(impl, h_ND, w_VD)
    if name == "reference":
        return F.cross_entropy((h_ND @ w_VD.T).float(), target_N, reduction=reduction)
    rows = chunk_rows or max(16, _CHUNK_BYTES // (4 * w_VD.shape[0]), _ROWS_PER_DIM * w_VD.shape[1])
    needs_grad = torch.is_grad_enabled() and (h_ND.requires_grad or w_VD.requires_grad)
    if reduction == "none":
        if needs_grad:
            raise KernelError("reduction='none' is for evaluation: call it under torch.no_grad()")
        return _row_losses(h_ND, w_VD, target_N, rows)
    if not needs_grad:
        total = _row_losses(h_ND, w_VD, target_N, rows).sum()
        return total / max(1, h_ND.shape[0]) if reduction == "mean" else total
    return _ChunkedLinearCE.apply(h_ND, w_VD, target_N, rows, reduction == "mean")


def _ineligible(h_ND: torch.Tensor, w_VD: torch.Tensor) -> str:
    return cpu_fp32_problem(h_ND, w_VD, "chunked")


@torch.no_grad()
def _row_losses(h_ND, w_VD, target_N, rows: int) -> torch.Tensor:
    """(N,) losses, one chunk of logits at a time."""
    out_N = h_ND.new_empty(h_ND.shape[0])
    mm = resolve_linear_impl("auto", h_ND[:rows], w_VD)
    for s in range(0, h_ND.shape[0], rows):
        z_CV = matmul_nt(h_ND[s:s + rows], w_VD, impl=mm)
        t_C1 = target_N[s:s + rows, None]
        out_N[s:s + rows] = -torch.log_softmax(z_CV, dim=-1).gather(1, t_C1).squeeze(1)
    return out_N


class _ChunkedLinearCE(torch.autograd.Function):
    """Loss and both gradients in one pass over row chunks; backward only scales the stored gradients."""

    @staticmethod
    def forward(ctx, h_ND, w_VD, target_N, rows: int, mean: bool):  # noqa: D401
        N, V = h_ND.shape[0], w_VD.shape[0]
        mm = resolve_linear_impl("auto", h_ND[:rows], w_VD)       # the chunks' matmuls: oneDNN where it pays
        grad_h_ND = torch.empty_like(h_ND) if ctx.needs_input_grad[0] else None
        grad_wT_DV = w_VD.new_zeros(w_VD.shape[::-1]) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float64)
        # one softmax buffer for all chunks: a fresh one per chunk is mostly fresh pages from the OS (2 MiB,
        # page-faulted each time); reusing it: dense-tiny training step x1.03-1.05 CPU time, interleaved A/B
        p_buf_RV = h_ND.new_empty(min(rows, N), V)
        # and one logits buffer for the torch.mm path (oneDNN returns a fresh tensor): interleaved A/B of the
        # op at dense-tiny shapes on an Intel Xeon, 42-47 ms against 53.5 (2,700 page faults a call -> 570)
        z_buf_RV = h_ND.new_empty(min(rows, N), V) if mm == "reference" else None
        for s in range(0, N, rows):
            h_CD, t_C = h_ND[s:s + rows], target_N[s:s + rows]
            if z_buf_RV is None:
                z_CV = matmul_nt(h_CD, w_VD, impl=mm)             # logits of this chunk only
            else:
                z_CV = torch.mm(h_CD, w_VD.T, out=z_buf_RV[:h_CD.shape[0]])
            max_C = z_CV.amax(dim=-1)
            z_target_C = z_CV.gather(1, t_C[:, None]).squeeze(1)
            p_CV = torch.ops.aten._softmax.out(z_CV, -1, False, out=p_buf_RV[:h_CD.shape[0]])
            # logsumexp from the softmax: at the argmax p = exp(0) / sum exp(z - max), so
            # lse = max + log(sum) = max - log(max p), with max p >= 1/V (no underflow). torch.softmax's
            # vectorised exp is ~4x faster than a separate exp_ (which goes to MKL's VML on x86)
            total += (max_C - p_CV.amax(dim=-1).log() - z_target_C).sum(dtype=torch.float64)
            p_CV.view(-1)[torch.arange(t_C.shape[0]) * V + t_C] -= 1.0   # d loss / d logits = p - onehot
            if grad_h_ND is not None and mm == "onednn":
                grad_h_ND[s:s + rows] = matmul_nt(p_CV, w_VD.t(), impl=mm)
            elif grad_h_ND is not None:                         # straight into the gradient, no temporary
                torch.mm(p_CV, w_VD, out=grad_h_ND[s:s + rows])
            if grad_wT_DV is not None:                          # (D, V): oneDNN's faster orientation
                if mm == "onednn":
                    grad_wT_DV += matmul_nt(h_CD.t(), p_CV.t(), impl=mm)
                else:
                    grad_wT_DV.addmm_(h_CD.T, p_CV)
        grad_w_VD = None if grad_wT_DV is None else grad_wT_DV.t().contiguous()
        scale = 1.0 / max(1, N) if mean else 1.0
        ctx.save_for_backward(grad_h_ND, grad_w_VD)
        ctx.scale = scale
        return (total * scale).to(h_ND.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        grad_h_ND, grad_w_VD = ctx.saved_tensors
        g = grad_out * ctx.scale
        return (None if grad_h_ND is None else grad_h_ND * g, None if grad_w_VD is None else grad_w_VD * g,
                None, None, None)
