"""FusedAdamW: torch's fused AdamW updates, bit for bit, without torch.optim's import of the compiler stack."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import torch

from mixopt.proxies import ProxyConfig, build_model
from mixopt.proxies.optim import FusedAdamW
from mixopt.proxies.trainer import _next_token_loss


def _train(make_optimizer, steps: int = 5):
    torch.manual_seed(0)
    model = build_model(ProxyConfig.preset("moe-tiny").with_vocab(300))  # tied embedding, experts, norm gains
    decay = [p for p in model.parameters() if p.dim() >= 2]
    groups = [{"params": decay, "weight_decay": 0.1},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    opt = make_optimizer(groups)
    batch = torch.randint(0, 300, (4, 33), generator=torch.Generator().manual_seed(1))
    losses = []
    for step in range(steps):
        for group in opt.param_groups:  # the trainer's schedule changes the rate of every group each step
            group["lr"] = 1e-2 * (step + 1) / steps
        loss, aux = _next_token_loss(model, batch, fused=False, autocast=contextlib.nullcontext)
        opt.zero_grad(set_to_none=True)
        (loss + aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().clone() for p in model.parameters()]


def test_updates_are_torch_fused_adamw_bit_for_bit():
    ours = _train(lambda groups: FusedAdamW(groups, lr=1e-3, betas=(0.9, 0.95)))
    theirs = _train(lambda groups: torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), fused=True))
    assert ours[0] == theirs[0]
    assert all(torch.equal(a, b) for a, b in zip(ours[1], theirs[1], strict=True))
    assert ours[0][-1] < ours[0][0] - 0.5  # and it trains (one batch, learnt by heart)


def test_weight_decay_applies_only_to_its_group_and_zero_grad_clears():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = FusedAdamW([{"params": [a], "weight_decay": 0.5}, {"params": [b], "weight_decay": 0.0}], lr=0.1,
                     betas=(0.9, 0.95))
    (0 * (a.sum() + b.sum())).backward()  # zero gradients: only the decay moves a parameter
    opt.step()
    assert torch.allclose(a.detach(), torch.full((2,), 1 - 0.1 * 0.5)) and torch.equal(b.detach(), torch.ones(2))
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_a_cpu_proxy_run_does_not_import_the_compiler_stack(demo_prepared):
    code = ("import sys\n"
            "from mixopt.data import load_prepared\n"
            "from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy\n"
            f"data = load_prepared({str(demo_prepared.data_dir)!r})\n"
            "rec = train_proxy(ProxyConfig.preset('dense-tiny'), data, {d: 1.0 for d in data.domains}, tokens=2048,\n"
            "                  seed=0, settings=TrainSettings(seq_len=32, batch_size=8, eval_points=1, eval_tokens=256),\n"
            "                  threads=1)\n"
            "print(rec.status, 'torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["ok", "False"]

