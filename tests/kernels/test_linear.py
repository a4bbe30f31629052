"""The oneDNN linear gives F.linear's output and gradients; the implementation choice is explicit."""

from __future__ import annotations

import importlib

import pytest
import torch

from mixopt.kernels.errors import KernelError
from mixopt.kernels.linear import (
    cpu_vendor,
    linear,
    matmul_nt,
    mkl_slow_path,
    onednn_available,
    resolve_linear_impl,
)

linear_mod = importlib.import_module("mixopt.kernels.linear")  # the module (the package exports the function)

requires_onednn = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN linear op")


def _grads(impl, x, w, g):
    x.grad = w.grad = None
    y = linear(x, w, impl=impl)
    y.backward(g)
    return y.detach(), x.grad.clone(), w.grad.clone()


@requires_onednn
@pytest.mark.parametrize("shape_x, n", [((37, 8), 50), ((40, 50), 8), ((16, 16), 16), ((2, 5, 12), 7), ((0, 4), 3)])
def test_onednn_matches_f_linear_in_output_and_gradients(shape_x, n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape_x, generator=g).requires_grad_()
    w = torch.randn(n, shape_x[-1], generator=g).requires_grad_()
    up = torch.randn(*shape_x[:-1], n, generator=g)
    ref, got = _grads("reference", x, w, up), _grads("onednn", x, w, up)
    for r, o in zip(ref, got, strict=True):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)


@requires_onednn
def test_onednn_takes_strided_inputs_and_sees_in_place_weight_updates():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 9, generator=g).t()                     # (9, 12), not contiguous
    w = torch.randn(5, 12, generator=g)
    torch.testing.assert_close(matmul_nt(x, w, impl="onednn"), x @ w.T)
    w.mul_(-2.0)                                                 # an optimizer step changes w in place
    torch.testing.assert_close(matmul_nt(x, w, impl="onednn"), x @ w.T)


def test_auto_falls_back_where_onednn_cannot_run_and_the_choice_can_be_forced(monkeypatch):
    x64, w64 = torch.randn(3, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    assert resolve_linear_impl("auto", x64, w64) == "reference"
    torch.testing.assert_close(linear(x64, w64), x64 @ w64.T)
    with pytest.raises(KernelError, match="fp32"):
        resolve_linear_impl("onednn", x64, w64)
    with pytest.raises(KernelError, match="unknown linear implementation"):
        resolve_linear_impl("blas", x64, w64)
    x, w = torch.randn(256, 64), torch.randn(64, 64)          # 2**20 multiply-adds: big enough for oneDNN
    monkeypatch.setattr(linear_mod, "mkl_slow_path", lambda: True)  # as on an AMD CPU
    assert resolve_linear_impl("auto", x, w) == ("onednn" if onednn_available() else "reference")
    assert resolve_linear_impl("auto", x[:255], w) == "reference"  # below: torch.mm's lower call overhead
    monkeypatch.setattr(linear_mod, "mkl_slow_path", lambda: False)  # as on an Intel CPU: MKL is faster
    assert resolve_linear_impl("auto", x, w) == "reference"
    monkeypatch.setattr(linear_mod, "mkl_slow_path", lambda: True)
    monkeypatch.setenv("MIXOPT_LINEAR_IMPL", "reference")
    assert resolve_linear_impl("auto", x, w) == "reference"
    monkeypatch.delenv("MIXOPT_LINEAR_IMPL")
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert resolve_linear_impl("auto", x, w) == "reference"


def test_the_cpu_vendor_decides_where_auto_uses_onednn():
    intel = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
    amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n"
    assert cpu_vendor(intel) == "GenuineIntel" and cpu_vendor(amd) == "AuthenticAMD"
    assert cpu_vendor("processor\t: 0\nBogoMIPS\t: 50.00\n") == ""   # an ARM /proc/cpuinfo: no vendor_id
    with open("/proc/cpuinfo") as f:                          # this machine (CI and ours run Linux on x86)
        here = cpu_vendor(f.read())
    assert here, "no vendor_id in /proc/cpuinfo"
    assert mkl_slow_path() == (here != "GenuineIntel")
