"""The fused output layer + loss gives the loss and the gradients of the plain logits path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixopt.kernels import linear_cross_entropy, resolve_lce_impl
from mixopt.kernels.errors import KernelError
from mixopt.kernels.linear import onednn_available
from mixopt.proxies import ProxyConfig
from mixopt.proxies.trainer import build_model, evaluate


def _inputs(n=37, d=8, v=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g).requires_grad_()
    w = (0.5 * torch.randn(v, d, generator=g)).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    return h, w, t


def _loss_and_grads(fn, h, w, t):
    h.grad = w.grad = None
    loss = fn(h, w, t)
    (3.0 * loss).backward()                      # a non-unit upstream gradient must scale both grads
    return loss.detach(), h.grad.clone(), w.grad.clone()


@pytest.mark.parametrize("matmuls", ["onednn", "reference"])  # the chunks' matmuls (kernels/linear.py)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("rows", [1, 5, 16, 37, 100])
def test_chunked_matches_the_logits_path_in_loss_and_gradients(reduction, rows, matmuls, monkeypatch):
    if matmuls == "onednn" and not onednn_available():
        pytest.skip("this torch build has no oneDNN linear op")
    monkeypatch.setenv("MIXOPT_LINEAR_IMPL", matmuls)
    h, w, t = _inputs()
    ref = _loss_and_grads(lambda a, b, c: F.cross_entropy(a @ b.T, c, reduction=reduction), h, w, t)
    got = _loss_and_grads(lambda a, b, c: linear_cross_entropy(a, b, c, reduction=reduction, impl="chunked",
                                                               chunk_rows=rows), h, w, t)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("matmuls", ["onednn", "reference"])
def test_per_row_losses_for_evaluation(matmuls, monkeypatch):
    if matmuls == "onednn" and not onednn_available():
        pytest.skip("this torch build has no oneDNN linear op")
    monkeypatch.setenv("MIXOPT_LINEAR_IMPL", matmuls)
    h, w, t = _inputs(n=20)
    with torch.no_grad():
        got = linear_cross_entropy(h, w, t, reduction="none", impl="chunked", chunk_rows=7)
        ref = F.cross_entropy(h @ w.T, t, reduction="none")
        mean = linear_cross_entropy(h, w, t, impl="chunked", chunk_rows=7)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mean, ref.mean(), rtol=1e-5, atol=1e-5)


def test_gradient_reaches_a_weight_tied_to_the_embedding():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(30, 8)
    ids = torch.randint(0, 30, (12,))
    targets = torch.randint(0, 30, (12,))

    def run(fused: bool):
        emb.zero_grad()
        h = torch.tanh(emb(ids))
        loss = (linear_cross_entropy(h, emb.weight, targets, impl="chunked", chunk_rows=5) if fused
                else F.cross_entropy(h @ emb.weight.T, targets))
        loss.backward()
        return emb.weight.grad.clone()

    torch.testing.assert_close(run(True), run(False), rtol=1e-5, atol=1e-6)


def test_bad_input_is_a_one_line_error():
    h, w, t = _inputs()
    with pytest.raises(KernelError, match="shapes do not fit"):
        linear_cross_entropy(h, w[:, :4], t)
    with pytest.raises(KernelError, match="reduction"):
        linear_cross_entropy(h, w, t, reduction="max")
    with pytest.raises(KernelError, match="evaluation"):
        linear_cross_entropy(h, w, t, reduction="none", impl="chunked")
    with pytest.raises(KernelError, match="unknown linear cross-entropy"):
        linear_cross_entropy(h, w, t, impl="triton")


def test_auto_falls_back_to_the_reference_where_the_chunked_path_cannot_run():
    h, w, t = _inputs()
    hb, wb = h.detach().bfloat16(), w.detach().bfloat16()
    assert resolve_lce_impl("auto", h, w) == "chunked"
    assert resolve_lce_impl("auto", hb, wb) == "reference"
    with pytest.raises(KernelError, match="fp32"):
        linear_cross_entropy(hb, wb, t, impl="chunked")
    torch.testing.assert_close(linear_cross_entropy(hb, wb, t), F.cross_entropy((hb @ wb.T).float(), t))


@pytest.mark.parametrize("preset", ["dense-tiny", "moe-tiny"])
def test_validation_losses_do_not_depend_on_the_fused_head_or_the_batching(preset):
    torch.manual_seed(0)
    model = build_model(ProxyConfig.preset(preset).with_vocab(97).replace(max_seq_len=16))
    g = torch.Generator().manual_seed(1)
    val = {"a": torch.randint(0, 97, (5, 17), generator=g), "b": torch.full((3, 17), 7)}
    fused = evaluate(model, val, batch_size=3, fused=True)
    plain = evaluate(model, val, batch_size=8, fused=False)
    for d in val:  # the per-domain mean of the plain logits path, one domain at a time
        logits = model(val[d][:, :-1]).logits_BTV
        expected = float(F.cross_entropy(logits.reshape(-1, 97), val[d][:, 1:].reshape(-1)))
        assert fused[d] == pytest.approx(expected, rel=1e-5)
        assert plain[d] == pytest.approx(expected, rel=1e-5)
    assert fused["a"] != pytest.approx(fused["b"], rel=1e-2)  # the domains are not mixed up
