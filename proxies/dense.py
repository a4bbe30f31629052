"""A dense decoder-only transformer (nanoGPT-style, Llama blocks): RMSNorm, rotary positions, SwiGLU,
causal attention through ``F.scaled_dot_product_attention``, optional tied embeddings.

Read top-down: :class:`Transformer` (embed -> blocks -> norm -> head), :class:`Block` (pre-norm
attention + feed-forward), :class:`Attention`, :class:`SwiGLU`, :class:`Rotary`. Tensor names carry their
shapes: B batch, T time, D model width, H heads, K head dim, F feed-forward width, V vocabulary.
The MoE family (``proxies/moe.py``) reuses these blocks and only swaps the feed-forward.

>>> from mixopt.proxies.config import ProxyConfig
>>> model = Transformer(ProxyConfig.preset("dense-tiny").with_vocab(300))
>>> model(torch.zeros(2, 16, dtype=torch.long)).logits_BTV.shape
torch.Size([2, 16, 300])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mixopt.kernels.linear import linear
from mixopt.proxies.config import ProxyConfig

__all__ = ["Attention", "Block", "ModelOutput", "RMSNorm", "Rotary", "SwiGLU", "Transformer"]


class ModelOutput(NamedTuple):
    logits_BTV: torch.Tensor
    aux_loss: torch.Tensor  # scalar: router losses (already weighted); 0 for dense models


class Transformer(nn.Module):
    """Token embedding -> ``n_layers`` blocks -> final RMSNorm -> output head."""

    def __init__(self, cfg: ProxyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rotary = Rotary(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.blocks = nn.ModuleList(Block(cfg, self.make_ffn(layer)) for layer in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.reset_parameters()

    def make_ffn(self, layer: int) -> nn.Module:
        """The feed-forward of one layer (overridden by the MoE family)."""
        return SwiGLU(self.cfg.d_model, self.cfg.d_ff)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02); residual output projections scaled by 1/sqrt(2 * n_layers)."""
        out_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)  # norm gains
            else:
                residual_out = name.endswith(("attn.proj.weight", "w_down.weight", "w_down_EFD"))
                nn.init.normal_(p, std=out_std if residual_out else 0.02)

    def forward(self, idx_BT: torch.Tensor) -> ModelOutput:
        h_BTD, aux = self.features(idx_BT)
        return ModelOutput(linear(h_BTD, self.head.weight), aux)

    def features(self, idx_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(final-normed hidden states h_BTD, aux loss): everything but the output head, so a fused
        ``linear_cross_entropy(h, self.head.weight, ...)`` can take the head and the loss together."""
        seq_len = idx_BT.shape[1]
        if seq_len > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {seq_len} exceeds max_seq_len {self.cfg.max_seq_len}")
        cos_TK, sin_TK = self.rotary(seq_len)
        x_BTD = self.embed(idx_BT)
        aux = x_BTD.new_zeros((), dtype=torch.float32)
        for block in self.blocks:
            x_BTD, block_aux = block(x_BTD, cos_TK, sin_TK)
            aux = aux + block_aux
        return self.norm(x_BTD), aux


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(norm(x))`` then ``x + ffn(norm(x))``."""

    def __init__(self, cfg: ProxyConfig, ffn: nn.Module) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = ffn

    def forward(self, x_BTD, cos_TK, sin_TK) -> tuple[torch.Tensor, torch.Tensor]:
        x_BTD = x_BTD + self.attn(self.attn_norm(x_BTD), cos_TK, sin_TK)
        y = self.ffn(self.ffn_norm(x_BTD))
        if isinstance(y, tuple):  # MoE feed-forward: (output, aux loss)
            y, aux = y
        else:
            aux = x_BTD.new_zeros((), dtype=torch.float32)
        return x_BTD + y, aux


class Attention(nn.Module):
    """Multi-head causal self-attention with rotary positions on q and k."""

    def __init__(self, cfg: ProxyConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x_BTD, cos_TK, sin_TK) -> torch.Tensor:
        B, T, D = x_BTD.shape
        qkv_BT3HK = linear(x_BTD, self.qkv.weight).view(B, T, 3, self.n_heads, self.head_dim)
        qk_BH2TK = apply_rotary(qkv_BT3HK[:, :, :2].transpose(1, 3), cos_TK, sin_TK)  # q and k in one go
        q_BHTK, k_BHTK = qk_BH2TK.unbind(2)
        v_BHTK = qkv_BT3HK[:, :, 2].transpose(1, 2)
        y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHTK, v_BHTK, is_causal=True)
        return linear(y_BHTK.transpose(1, 2).reshape(B, T, D), self.proj.weight)


class SwiGLU(nn.Module):
    """``w_down(silu(x W_gate) * (x W_up))``, the gate and up projections stored as one weight.

    On a GPU they run as one fused matmul. On CPU they run as two matmuls on the weight's two row blocks:
    silu and the product then read contiguous rows instead of the strided halves of one fused output
    (silu alone ~2x faster; dense-tiny training step x1.02-1.04 CPU time, interleaved A/B).
    """

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.w_gate_up = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        if x_BTD.device.type == "cpu":
            w_gate_FD, w_up_FD = self.w_gate_up.weight.chunk(2, dim=0)
            gate_BTF, up_BTF = linear(x_BTD, w_gate_FD), linear(x_BTD, w_up_FD)
        else:
            gate_BTF, up_BTF = linear(x_BTD, self.w_gate_up.weight).chunk(2, dim=-1)
        return linear(F.silu(gate_BTF) * up_BTF, self.w_down.weight)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class Rotary(nn.Module):
    """Rotary position tables for the first T positions, (T, K) each: ``cos`` twice over the head dim's two
    halves, and ``sin`` with the first half negated (the sign of the rotation, so no op applies it)."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles_TK = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        cos, sin = angles_TK.cos(), angles_TK.sin()
        self.register_buffer("cos_TK", torch.cat((cos, cos), dim=-1), persistent=False)
        self.register_buffer("sin_TK", torch.cat((-sin, sin), dim=-1), persistent=False)

    def forward(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos_TK[:T], self.sin_TK[:T]


def apply_rotary(x_BHTK: torch.Tensor, cos_TK: torch.Tensor, sin_TK: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of each head dim by position-dependent angles:
    ``(x1 cos - x2 sin, x1 sin + x2 cos)``, as ``x * cos + (x2, x1) * sin`` with :class:`Rotary`'s signed
    tables (the same fp32 values; 2 multiplies, an add and a cat instead of 4, 2 and a cat)."""
    x1, x2 = x_BHTK.chunk(2, dim=-1)
    return x_BHTK * cos_TK.to(x_BHTK.dtype) + torch.cat((x2, x1), dim=-1) * sin_TK.to(x_BHTK.dtype)
