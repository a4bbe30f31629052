"""The mixture-of-experts transformer: the dense blocks of ``proxies/dense.py`` with routed SwiGLU experts.

Read top-down: :class:`MoETransformer` swaps the feed-forward of every ``moe_every``-th layer for a
:class:`MoEFeedForward`: a token-choice top-k softmax :class:`Router` (in fp32) picks experts, and
``kernels.moe_experts`` runs them dropless (permute by expert -> grouped matmul -> combine). Expert
weights are 3-D parameters (E experts, D model width, F expert width).

Auxiliary losses (returned beside the output, already weighted, added to the LM loss by the trainer):

- switch load balancing ``E * sum_e f_e * P_e`` (f_e: share of token assignments routed to expert e,
  P_e: mean router probability of e); 1 at perfect balance, up to E/K when collapsed;
- router z-loss ``mean(logsumexp(logits)^2)``, keeping router logits small.

>>> from mixopt.proxies.config import ProxyConfig
>>> model = MoETransformer(ProxyConfig.preset("moe-tiny").with_vocab(300))
>>> out = model(torch.zeros(2, 16, dtype=torch.long))
>>> out.logits_BTV.shape, out.aux_loss.shape
(torch.Size([2, 16, 300]), torch.Size([]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mixopt.kernels import moe_experts
from mixopt.proxies.config import ProxyConfig
from mixopt.proxies.dense import SwiGLU, Transformer

__all__ = ["MoEFeedForward", "MoETransformer", "Router", "RouterOutput"]


class MoETransformer(Transformer):
    """A :class:`~proxies.dense.Transformer` whose feed-forward is routed experts in MoE layers."""

    def make_ffn(self, layer: int) -> nn.Module:
        if self.cfg.is_moe_layer(layer):
            return MoEFeedForward(self.cfg)
        return SwiGLU(self.cfg.d_model, self.cfg.d_ff)


class MoEFeedForward(nn.Module):
    """Route each token to ``top_k`` of ``n_experts`` SwiGLU experts; returns (y_BTD, weighted aux loss)."""

    def __init__(self, cfg: ProxyConfig) -> None:
        super().__init__()
        E, D, Fe = cfg.n_experts, cfg.d_model, cfg.expert_d_ff
        self.router = Router(D, E, cfg.top_k)
        self.w_gate_EDF = nn.Parameter(torch.empty(E, D, Fe))
        self.w_up_EDF = nn.Parameter(torch.empty(E, D, Fe))
        self.w_down_EFD = nn.Parameter(torch.empty(E, Fe, D))
        self.aux_loss_weight, self.z_loss_weight = cfg.aux_loss_weight, cfg.z_loss_weight
        self.impl = cfg.moe_impl
        self.last_stats: dict[str, torch.Tensor] = {}  # detached router losses of the last forward

    def forward(self, x_BTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(B * T, D)
        r = self.router(x_ND)                                   # fp32 routing
        dev = x_ND.device.type                                  # experts run in the autocast dtype (bf16)
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x_ND.dtype
        x_ND = x_ND.to(dtype)
        y_ND = moe_experts(x_ND, r.expert_idx_NK, r.weight_NK.to(dtype), self.w_gate_EDF.to(dtype),
                           self.w_up_EDF.to(dtype), self.w_down_EFD.to(dtype), impl=self.impl)
        aux = self.aux_loss_weight * r.balance_loss + self.z_loss_weight * r.z_loss
        self.last_stats = {"balance_loss": r.balance_loss.detach(), "z_loss": r.z_loss.detach()}
        return y_ND.view(B, T, D), aux


class RouterOutput(NamedTuple):
    """Top-k choice per token and the router's (unweighted) auxiliary losses."""

    expert_idx_NK: torch.Tensor  # (N, K) int64 expert ids, most probable first
    weight_NK: torch.Tensor      # (N, K) fp32 combine weights, summing to 1 per token
    balance_loss: torch.Tensor   # scalar, switch load-balancing loss (1 = balanced)
    z_loss: torch.Tensor         # scalar, mean squared logsumexp of the router logits


class Router(nn.Module):
    """Token-choice top-k softmax router computed in fp32; top-k weights renormalised to sum to 1."""

    def __init__(self, d_model: int, n_experts: int, top_k: int) -> None:
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.gate = nn.Linear(d_model, n_experts, bias=False)

    def forward(self, x_ND: torch.Tensor) -> RouterOutput:
        logits_NE = F.linear(x_ND.float(), self.gate.weight.float())
        # softmax over the E experts through the transposed view: PyTorch's CPU kernel for a short last dim
        # runs row by row (2048 x 8, fwd+bwd: 614 us), across rows for dim 0 (155 us); same values to 3e-8
        probs_NE = logits_NE.T.softmax(dim=0).T
        top_p_NK, expert_idx_NK = torch.topk(probs_NE, self.top_k, dim=-1)
        weight_NK = top_p_NK / top_p_NK.sum(dim=-1, keepdim=True)
        return RouterOutput(expert_idx_NK, weight_NK, *router_losses(logits_NE, probs_NE, expert_idx_NK))


def router_losses(logits_NE: torch.Tensor, probs_NE: torch.Tensor, expert_idx_NK: torch.Tensor):
    """(switch balance loss, z-loss). Balance: ``E * sum_e f_e P_e``, 1 when routing is uniform."""
    N, E = probs_NE.shape
    counts_E = torch.bincount(expert_idx_NK.reshape(-1), minlength=E).to(probs_NE.dtype)
    frac_routed_E = counts_E / expert_idx_NK.numel()      # f_e: no gradient (argmax-based)
    mean_prob_E = probs_NE.mean(dim=0)                     # P_e: differentiable
    balance = E * (frac_routed_E * mean_prob_E).sum()
    z = torch.logsumexp(logits_NE, dim=-1).pow(2).mean()
    return balance, z
