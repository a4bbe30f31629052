"""Dense fp32 matmuls on CPU through oneDNN instead of the BLAS behind ``torch.mm``.

On x86 CPUs PyTorch sends fp32 ``mm`` / ``F.linear`` to MKL's sgemm. MKL picks its kernels by CPU
vendor, and on AMD it runs an AVX2 path even where the core has AVX-512: on the AMD EPYC (Zen 5) the
benchmarks run on, ``torch.mm`` reaches ~85 GFLOP/s per core while oneDNN (also inside PyTorch, picking
its kernels by instruction set) reaches ~190 GFLOP/s on the same shapes, proxy-sized ones included.
Both compute the same fp32 sums; results differ at rounding level (summation order).

Implementations of ``linear(x, w)`` = ``x @ w.T`` (differentiable in both arguments):

- ``"reference"``: ``F.linear``.
- ``"onednn"``: ``torch.ops.mkldnn._linear_pointwise`` for the forward and for both backward matmuls
  (a custom autograd function). fp32 tensors on CPU, with oneDNN in this torch build and enabled.
- ``"auto"``: ``"onednn"`` where eligible, on an x86 CPU not made by Intel (where MKL takes its slower
  path), and where the product has at least 2**20 multiply-adds (M * K * N); else ``"reference"``. A
  oneDNN call costs ~15 us more than ``torch.mm`` whatever its size, which the faster kernels win back from
  about 1M multiply-adds on (measured, M = 1..1024 rows, AMD EPYC). On an Intel Xeon (AVX-512, AMX) MKL
  is the faster library at proxy shapes (``torch.mm`` 85-94 GFLOP/s per core against oneDNN's 75-85, and
  the dense-tiny trainer x1.33 against x1.14 with oneDNN), so there ``"auto"`` stays with ``torch.mm``.
  The choice depends only on the CPU, never on a timing, so a seed gives the same losses on a machine.

Force one with ``linear(..., impl=...)`` or the ``MIXOPT_LINEAR_IMPL`` environment variable (read when
``impl="auto"``). ``matmul_nt(a, b)`` is the same ``a @ b.T`` without autograd, for kernels that do
their own backward (``linear_cross_entropy``).

>>> x, w = torch.randn(5, 8, requires_grad=True), torch.randn(3, 8, requires_grad=True)
>>> torch.allclose(linear(x, w, impl="onednn"), x @ w.T, atol=1e-5) if onednn_available() else True
True
"""

from __future__ import annotations

import functools
import os
import platform

import torch
import torch.nn.functional as F

from mixopt.kernels.errors import KernelError

__all__ = ["LINEAR_IMPLS", "cpu_fp32_problem", "cpu_vendor", "linear", "matmul_nt", "mkl_slow_path", "onednn_available",
           "resolve_linear_impl"]

LINEAR_IMPLS = ("reference", "onednn")
_ONEDNN_MIN_MACS = 1 << 20  # "auto" below this: torch.mm (see the module docstring)


@functools.cache
def onednn_available() -> bool:
    """Whether this torch build has the oneDNN linear op and it gives ``x @ w.T`` (checked once)."""
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
    if op is None:
        return False
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(7, 24, generator=g), torch.randn(5, 24, generator=g)
        return bool(torch.allclose(op(a, b, None, "none", [], ""), a @ b.T, rtol=1e-5, atol=1e-5))
    except RuntimeError:
        return False


def cpu_vendor(cpuinfo: str) -> str:
    """The ``vendor_id`` in the text of ``/proc/cpuinfo`` (``"GenuineIntel"``, ``"AuthenticAMD"``...); ``""``
    when there is none (not x86, or not Linux)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return ""


@functools.cache
def mkl_slow_path() -> bool:
    """Whether this is an x86 CPU that MKL does not take its fastest path on: one not made by Intel (MKL
    picks kernels by vendor). Unknown CPUs count as not slow, so ``"auto"`` keeps ``torch.mm`` there."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            vendor = cpu_vendor(f.read(1 << 16))
    except OSError:  # not Linux: the vendor is unknown
        return False
    return vendor not in ("", "GenuineIntel")


def cpu_fp32_problem(a: torch.Tensor, b: torch.Tensor, path: str) -> str:
    """Why a CPU fp32 fast path (``path``, for the message) cannot take ``a`` and ``b``; ``""`` if it can."""
    if a.device.type != "cpu" or b.device.type != "cpu":
        return f"device {a.device.type} (the {path} path is for CPU)"
    if a.dtype != torch.float32 or b.dtype != torch.float32:
        return f"dtype {a.dtype}/{b.dtype} (the {path} path is fp32)"
    if torch.is_autocast_enabled("cpu"):
        return "CPU autocast is on"
    return ""


def _ineligible(x: torch.Tensor, w: torch.Tensor) -> str:
    if why := cpu_fp32_problem(x, w, "oneDNN"):
        return why
    if not torch.backends.mkldnn.enabled:
        return "oneDNN is disabled (torch.backends.mkldnn.enabled is False)"
    if not onednn_available():
        return "this torch build has no working oneDNN linear op"
    return ""


def resolve_linear_impl(impl: str, x: torch.Tensor, w: torch.Tensor) -> str:
    """The implementation that will run for ``x @ w.T`` (x: (..., K), w: (N, K)); a forced ``"onednn"`` that
    cannot run raises ``KernelError``."""
    if impl == "auto":
        impl = os.environ.get("MIXOPT_LINEAR_IMPL", "").strip() or "auto"
    if impl not in LINEAR_IMPLS + ("auto",):
        raise KernelError(f"unknown linear implementation {impl!r}; choose one of {LINEAR_IMPLS + ('auto',)}")
    why = _ineligible(x, w)
    if impl == "auto":
        small = x.numel() * w.shape[0] < _ONEDNN_MIN_MACS
        return "reference" if why or small or not mkl_slow_path() else "onednn"
    if impl == "onednn" and why:
        raise KernelError(f"linear 'onednn' is not available here: {why}")
    return impl


def _onednn_nt(a_MK: torch.Tensor, b_NK: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` through oneDNN (any strides; (M, N) contiguous out)."""
    if a_MK.numel() == 0 or b_NK.numel() == 0:  # oneDNN has no empty-reduction primitive
        return a_MK @ b_NK.T
    return torch.ops.mkldnn._linear_pointwise(a_MK, b_NK, None, "none", [], "")


def matmul_nt(a_MK: torch.Tensor, b_NK: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """``a @ b.T`` for 2-D tensors, no autograd: oneDNN where eligible (see the module docstring)."""
    if resolve_linear_impl(impl, a_MK, b_NK) == "onednn":
        return _onednn_nt(a_MK, b_NK)
    return a_MK @ b_NK.T


def linear(x: torch.Tensor, w_NK: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """``x @ w.T`` (``F.linear`` without bias) for x of shape (..., K), w of shape (N, K)."""
    if resolve_linear_impl(impl, x, w_NK) == "reference":
        return F.linear(x, w_NK)
    x_MK = x.reshape(-1, x.shape[-1])
    return _OneDNNLinear.apply(x_MK, w_NK).view(*x.shape[:-1], w_NK.shape[0])


class _OneDNNLinear(torch.autograd.Function):
    """y = x w^T; dx = dy w; dw = dy^T x (see ``_weight_grad``)."""

    @staticmethod
    def forward(ctx, x_MK, w_NK):  # noqa: D401
        ctx.save_for_backward(x_MK, w_NK)
        return _onednn_nt(x_MK, w_NK)

    @staticmethod
    def backward(ctx, grad_MN):
        x_MK, w_NK = ctx.saved_tensors
        grad_x = _onednn_nt(grad_MN, w_NK.t()) if ctx.needs_input_grad[0] else None
        grad_w = _weight_grad(x_MK, grad_MN) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w


def _weight_grad(x_MK: torch.Tensor, grad_MN: torch.Tensor) -> torch.Tensor:
    """dw = dy^T x, (N, K). oneDNN is ~1.6x faster on these tall-skinny products when its output has
    fewer rows than columns (measured on the proxy shapes), so for K < N it computes (x^T dy)^T."""
    if x_MK.shape[1] < grad_MN.shape[1]:
        return _onednn_nt(x_MK.t(), grad_MN.t()).t()
    return _onednn_nt(grad_MN.t(), x_MK.t())
