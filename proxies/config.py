"""Proxy model sizes and trainer settings: typed dataclasses with named presets.

A :class:`ProxyConfig` fixes the architecture (dense or mixture-of-experts) and knows its own parameter
count and training FLOPs per token; :class:`TrainSettings` fixes how a proxy is trained (sequence length,
batch, learning-rate schedule, evaluation points). Both flatten to plain dicts (for MLflow params and run
records).

>>> cfg = ProxyConfig.preset("dense-tiny").with_vocab(2048)
>>> 300_000 < cfg.param_counts()["total"] < 500_000
True
>>> moe = ProxyConfig.preset("moe-tiny").with_vocab(2048)
>>> moe.param_counts()["total"] > moe.param_counts()["active"]
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from mixopt.errors import ConfigError

__all__ = ["PRESETS", "ProxyConfig", "TrainSettings"]


@dataclass(frozen=True)
class ProxyConfig:
    """Architecture of one proxy language model (decoder-only transformer, optionally MoE).

    ``d_ff`` is the SwiGLU hidden width of a dense feed-forward layer; ``expert_d_ff`` that of one expert.
    With ``n_experts > 0`` every ``moe_every``-th layer (layers ``moe_every-1, 2*moe_every-1, ...``) is a
    token-choice top-``top_k`` MoE layer; the others stay dense.
    """

    name: str = "custom"
    vocab_size: int = 2048
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 176
    max_seq_len: int = 512
    tie_embeddings: bool = True
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    # mixture of experts (n_experts == 0: dense)
    n_experts: int = 0
    top_k: int = 2
    expert_d_ff: int = 0
    moe_every: int = 1
    aux_loss_weight: float = 0.01
    z_loss_weight: float = 0.001
    moe_impl: str = "auto"

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"proxy {self.name}: d_model {self.d_model} must split into an even head dim "
                              f"over {self.n_heads} heads")
        if min(self.vocab_size, self.d_model, self.n_layers, self.n_heads, self.d_ff, self.max_seq_len) <= 0:
            raise ConfigError(f"proxy {self.name}: sizes must be positive")
        if self.n_experts:
            if not 1 <= self.top_k <= self.n_experts:
                raise ConfigError(f"proxy {self.name}: top_k {self.top_k} must be in 1..n_experts={self.n_experts}")
            if self.expert_d_ff <= 0 or self.moe_every <= 0:
                raise ConfigError(f"proxy {self.name}: expert_d_ff and moe_every must be positive")

    # --- presets -------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> ProxyConfig:
        """The named size preset (see :data:`PRESETS`); raises ConfigError naming the choices."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ConfigError(f"unknown proxy preset {name!r}; choose one of {sorted(PRESETS)}") from None

    @classmethod
    def dense_tiny(cls) -> ProxyConfig:
        return cls.preset("dense-tiny")

    @classmethod
    def moe_tiny(cls) -> ProxyConfig:
        return cls.preset("moe-tiny")

    def with_vocab(self, vocab_size: int) -> ProxyConfig:
        """A copy with the tokenizer's vocabulary size."""
        return dataclasses.replace(self, vocab_size=int(vocab_size))

    def replace(self, **changes: Any) -> ProxyConfig:
        return dataclasses.replace(self, **changes)

    # --- derived -------------------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def is_moe_layer(self, layer: int) -> bool:
        return self.is_moe and (layer + 1) % self.moe_every == 0

    def param_counts(self) -> dict[str, int]:
        """Parameter counts: ``total``, ``active`` (per token: top-k experts only) and ``non_embedding``
        (total minus the token embedding and, when untied, the output head)."""
        D, V = self.d_model, self.vocab_size
        attn = 4 * D * D
        norms = 2 * D
        dense_ffn = 3 * D * self.d_ff
        total = active = 0
        for layer in range(self.n_layers):
            total += attn + norms
            active += attn + norms
            if self.is_moe_layer(layer):
                one_expert = 3 * D * self.expert_d_ff
                router = D * self.n_experts
                total += router + self.n_experts * one_expert
                active += router + self.top_k * one_expert
            else:
                total += dense_ffn
                active += dense_ffn
        embed = V * D * (1 if self.tie_embeddings else 2)
        return {"total": total + D + embed, "active": active + D + embed, "non_embedding": total + D}

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: ``6 * N`` with N the active non-embedding parameters plus the output
        head (a real matmul even when tied), plus the attention term ``6 * n_layers * seq_len * d_model``
        (Kaplan et al. 2020, forward + backward, not halved for causal masking)."""
        T = self.max_seq_len if seq_len is None else seq_len
        counts = self.param_counts()
        n = counts["active"] - self.vocab_size * self.d_model * (1 if self.tie_embeddings else 2)
        n += self.vocab_size * self.d_model
        return float(6 * n + 6 * self.n_layers * T * self.d_model)

    def to_dict(self) -> dict[str, Any]:
        """A flat dict of every field (for MLflow params and run records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProxyConfig:
        return cls(**d)


def _dense(name: str, d: int, layers: int, heads: int, ff: int, seq: int, vocab: int, tie: bool) -> ProxyConfig:
    return ProxyConfig(name=name, vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, d_ff=ff,
                       max_seq_len=seq, tie_embeddings=tie)


def _moe(dense: ProxyConfig, name: str, experts: int = 8, top_k: int = 2, moe_every: int = 1) -> ProxyConfig:
    # fine-grained experts: top_k experts of width d_ff / top_k match the dense FFN's active parameters
    return dataclasses.replace(dense, name=name, n_experts=experts, top_k=top_k, moe_every=moe_every,
                               expert_d_ff=dense.d_ff // top_k)


_DENSE = [
    # CPU sizes (vocab from the tokenizer; 2048 nominal)
    _dense("dense-tiny", 64, 4, 4, 176, 256, 2048, True),
    _dense("dense-small", 128, 4, 4, 352, 512, 2048, True),
    _dense("dense-mid", 256, 8, 8, 704, 512, 2048, True),  # ~7M: the CPU size whose matmuls fill the core
    # GPU sizes (32768 nominal vocab)
    _dense("dense-20m", 384, 6, 6, 1024, 1024, 32768, True),
    _dense("dense-60m", 512, 12, 8, 1408, 1024, 32768, True),
    _dense("dense-150m", 768, 16, 12, 2048, 2048, 32768, True),
    _dense("dense-400m", 1024, 28, 16, 2816, 2048, 32768, False),
    _dense("dense-1b", 2048, 18, 16, 5632, 2048, 32768, False),
]
PRESETS: dict[str, ProxyConfig] = {c.name: c for c in _DENSE}
PRESETS |= {n.replace("dense", "moe"): _moe(c, n.replace("dense", "moe")) for n, c in list(PRESETS.items())}


@dataclass(frozen=True)
class TrainSettings:
    """How one proxy is trained. Fields map 1:1 from ``JobConfig.proxy`` (see :meth:`from_job`).

    ``warmup`` is a fraction of the total steps (linear warmup). ``schedule="cosine"`` decays to
    ``min_lr_ratio * lr``; ``"wsd"`` holds the peak LR and decays linearly over the last ``decay_frac`` of
    the steps. ``eval_points`` log-spaced evaluations (always including the last step) measure the
    per-domain validation loss on ``eval_tokens`` fixed held-out tokens per domain.
    A run fails (status "failed") on a non-finite loss, on a loss above ``explode_factor`` x the first
    step's loss after warmup, or above ``max_loss`` at any step. ``max_epochs``/``on_epoch_cap`` are
    handed to the mixture sampler (repetition cap per domain). ``evals``: downstream evaluation tasks
    (plain dicts, see :mod:`mixopt.proxies.evals`) scored once training ends.
    """

    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    schedule: Literal["cosine", "wsd"] = "cosine"
    warmup: float = 0.1
    min_lr_ratio: float = 0.1
    decay_frac: float = 0.2
    eval_points: int = 6
    eval_tokens: int = 8192
    eval_batch_size: int = 64
    grad_clip: float = 1.0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    compile: bool = False
    dtype: Literal["fp32", "bf16"] = "fp32"
    max_loss: float | None = None
    explode_factor: float = 3.0
    max_epochs: float | None = None
    on_epoch_cap: Literal["warn", "fail"] = "warn"
    evals: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "evals", tuple(dict(t) for t in self.evals))
        if self.seq_len < 2 or self.batch_size < 1 or self.eval_points < 1 or self.eval_tokens < 1:
            raise ConfigError("train settings: seq_len >= 2, batch_size, eval_points, eval_tokens >= 1")
        if not (self.lr > 0 and 0 <= self.warmup < 1 and 0 < self.decay_frac <= 1):
            raise ConfigError("train settings: need lr > 0, 0 <= warmup < 1, 0 < decay_frac <= 1")
        if self.schedule not in ("cosine", "wsd") or self.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"train settings: schedule {self.schedule!r} / dtype {self.dtype!r} not supported")

    @classmethod
    def from_job(cls, proxy: Any, **overrides: Any) -> TrainSettings:
        """From a ``JobConfig.proxy`` section (``mixopt.config.ProxySettings``)."""
        keys = ("seq_len", "batch_size", "lr", "schedule", "eval_points", "eval_tokens")
        return cls(**{k: getattr(proxy, k) for k in keys if hasattr(proxy, k)} | overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["evals"] = [dict(t) for t in self.evals]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainSettings:
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)
