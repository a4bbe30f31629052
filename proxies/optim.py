"""AdamW for the CPU trainer: torch's fused AdamW step behind a minimal optimizer object.

``torch.optim.Optimizer`` imports ``torch._dynamo`` (and sympy with it) the first time one is built in a
process: 1.7 s of CPU on the 2-core VM, paid by the first proxy of every fresh Ray worker, about the length
of a whole CPU-tiny proxy run. :class:`FusedAdamW` calls the same computation through torch's functional API
(``torch.optim.adamw.adamw`` with ``fused=True``), which imports nothing, so its updates are those of
``torch.optim.AdamW(groups, ..., fused=True)`` bit for bit (``tests/proxies/test_optim.py``). It keeps only
what the trainer uses: ``param_groups`` (a group's ``lr`` may be changed between steps), ``zero_grad`` and
``step``; no closure, no state dict, no AMSGrad.

>>> w = torch.nn.Parameter(torch.ones(3))
>>> opt = FusedAdamW([{"params": [w], "weight_decay": 0.0}], lr=0.1, betas=(0.9, 0.95))
>>> w.sum().backward(); opt.step(); w.detach()
tensor([0.9000, 0.9000, 0.9000])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adamw import adamw

__all__ = ["FusedAdamW"]


class FusedAdamW:
    """AdamW with decoupled weight decay over parameter groups (dicts with ``params`` and ``weight_decay``;
    ``lr``, ``betas``, ``eps`` default to the constructor's). Parameters must be fp32 on CPU or CUDA."""

    def __init__(self, groups: Iterable[dict[str, Any]], *, lr: float, betas: tuple[float, float],
                 eps: float = 1e-8) -> None:
        self.param_groups = [{"lr": lr, "betas": tuple(betas), "eps": eps, **g, "params": list(g["params"])}
                             for g in groups]
        # per parameter: (exp_avg, exp_avg_sq, step count as a float32 scalar tensor), as torch.optim keeps them
        self.state: dict[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p not in self.state:
                    self.state[p] = (torch.zeros_like(p, memory_format=torch.preserve_format),
                                     torch.zeros_like(p, memory_format=torch.preserve_format),
                                     torch.zeros((), dtype=torch.float32, device=p.device))
            avg, avg_sq, steps = zip(*(self.state[p] for p in params), strict=True)
            beta1, beta2 = group["betas"]
            adamw(params, [p.grad for p in params], list(avg), list(avg_sq), [], list(steps), fused=True,
                  amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                  eps=group["eps"], maximize=False)
