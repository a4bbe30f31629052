"""Train one proxy on a data mixture for a token budget and record per-domain validation losses.

``train_proxy`` never raises for a run that goes wrong while training (divergence, NaN, an exception in
a step): it returns a ``RunRecord`` with ``status="failed"`` and the reason. It does raise a one-line
``MixoptError`` for bad input before training starts (bad weights, a budget smaller than one step,
CUDA asked for on a machine without it).

>>> record = train_proxy(ProxyConfig.preset("dense-tiny"), data, {"code": 0.7, "web": 0.3},
...                      tokens=200_000, seed=0)                                # doctest: +SKIP
>>> record.final_loss                                                           # doctest: +SKIP
{'code': 3.91, 'web': 5.02}
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mixopt.errors import MixoptError
from mixopt.kernels import linear_cross_entropy, resolve_impl, resolve_lce_impl, resolve_linear_impl
from mixopt.proxies.config import ProxyConfig, TrainSettings
from mixopt.proxies.dense import Transformer
from mixopt.proxies.moe import MoEFeedForward, MoETransformer
from mixopt.proxies.optim import FusedAdamW
from mixopt.proxies.record import RunRecord
from mixopt.proxies.schedule import eval_steps, lr_factor

__all__ = ["build_model", "default_threads", "evaluate", "train_proxy"]

# Training losses are read back to the host every this many steps (and at every evaluation point); a
# divergence is still reported at the step it happened, at most this many steps later.
_SYNC_EVERY = {"cpu": 1, "cuda": 16}


def build_model(config: ProxyConfig) -> Transformer:
    """The model for a config: :class:`MoETransformer` when ``n_experts > 0``, else :class:`Transformer`."""
    return MoETransformer(config) if config.is_moe else Transformer(config)


def default_threads() -> int:
    """Torch threads for one proxy: ``MIXOPT_THREADS``, else ``OMP_NUM_THREADS`` (Ray sets it per worker),
    else the CPUs this process may use."""
    for var in ("MIXOPT_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def train_proxy(config: ProxyConfig, data: Any, weights: Any, *, tokens: int, seed: int,
                settings: TrainSettings | None = None, threads: int | None = None,
                device: str = "cpu") -> RunRecord:
    """Train ``config`` on ``data`` sampled with mixture ``weights`` for ``tokens`` tokens.

    data: a ``mixopt.data.PreparedData``; weights: dict domain -> weight or a (k,) sequence in domain
    order (validated, renormalised). The vocabulary comes from ``data.vocab_size``. Steps =
    ``tokens // (batch_size * seq_len)``. ``threads`` sets torch's intra-op threads for the call
    (restored afterwards; default :func:`default_threads`). ``device``: "cpu", "cuda" or "auto".
    Same seed and machine -> bit-identical losses on CPU.
    """
    from mixopt.data import MixtureSampler, validate_weights  # the data layer sits below proxies

    t_start = time.perf_counter()
    settings = settings or TrainSettings()
    w = validate_weights(weights, data.domains)
    weights_d = {d: float(x) for d, x in zip(data.domains, w, strict=True)}
    config = config.with_vocab(data.vocab_size)
    if settings.seq_len > config.max_seq_len:
        config = config.replace(max_seq_len=settings.seq_len)
    B, T = settings.batch_size, settings.seq_len
    n_steps = int(tokens) // (B * T)
    if n_steps < 1:
        raise MixoptError(f"token budget {tokens} is less than one step of batch {B} x seq_len {T}")
    dev = _resolve_device(device)
    use_bf16 = settings.dtype == "bf16" and dev.type == "cuda"
    use_compile = settings.compile and dev.type == "cuda"
    counts = config.param_counts()
    flops_per_token = config.flops_per_token(T)
    points = eval_steps(n_steps, settings.eval_points)
    record = RunRecord(
        run_id=uuid.uuid4().hex[:12], weights=weights_d, preset=config.name, seed=int(seed), tokens=int(tokens),
        n_params=counts["total"], n_active_params=counts["active"], n_nonembed_params=counts["non_embedding"],
        flops=flops_per_token * n_steps * B * T, steps=[], tokens_seen=[], val_loss={d: [] for d in data.domains},
        final_loss={}, wall_time=0.0, tokens_per_s=0.0, status="ok", reason=None,
        extra={"tokens_trained": n_steps * B * T, "total_steps": n_steps, "flops_per_token": flops_per_token,
               "device": dev.type, "dtype": "bf16" if use_bf16 else "fp32", "compile": use_compile,
               "config": config.to_dict(), "settings": settings.to_dict(), "train_loss": []},
    )
    prev_threads = torch.get_num_threads()
    n_threads = threads or default_threads()
    torch.set_num_threads(max(1, int(n_threads)))
    record.extra["threads"] = torch.get_num_threads()
    train_time, train_cpu, steps_done = 0.0, 0.0, 0
    try:
        fork_devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            model = build_model(config).to(dev)
        if config.is_moe:
            x_probe = torch.empty(1, config.d_model, device=dev, dtype=torch.bfloat16 if use_bf16 else torch.float32)
            record.extra["moe_impl"] = resolve_impl(config.moe_impl, x_probe, x_probe.new_empty(1, config.d_model,
                                                                                               config.expert_d_ff))
        step_model = torch.compile(model) if use_compile else model
        # fused output layer + loss (kernels/linear_cross_entropy.py) where it runs: CPU fp32, no compile
        fused_head = not use_compile and not use_bf16 and resolve_lce_impl(
            "auto", model.head.weight[:1], model.head.weight) == "chunked"
        record.extra["fused_head"] = fused_head
        h_probe = model.head.weight.new_empty(B * T, config.d_model)  # the training step's projections
        record.extra["linear_impl"] = resolve_linear_impl("auto", h_probe, model.head.weight)
        optimizer = _make_optimizer(model, settings, dev)
        sampler = MixtureSampler(data, w, seq_len=T, batch_size=B, seed=seed, max_epochs=settings.max_epochs,
                                 on_epoch_cap=settings.on_epoch_cap)
        val = {d: s.to(dev) for d, s in data.val_sequences(T, settings.eval_tokens).items()}
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
        initial_loss, window, pending = None, [], []
        sync_every = _SYNC_EVERY.get(dev.type, 1)
        n_warm = math.ceil(settings.warmup * n_steps)
        for step in range(1, n_steps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            lr = settings.lr * lr_factor(step - 1, n_steps, schedule=settings.schedule, warmup=settings.warmup,
                                         min_lr_ratio=settings.min_lr_ratio, decay_frac=settings.decay_frac)
            for group in optimizer.param_groups:
                group["lr"] = lr
            tokens_BT1, _ = sampler.next_batch()
            tokens_BT1 = tokens_BT1.to(dev, non_blocking=True)
            lm_loss, aux_loss = _next_token_loss(model, tokens_BT1, fused=fused_head, autocast=autocast,
                                                 forward=step_model)
            loss = lm_loss + aux_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            pending.append(lm_loss.detach())
            # read losses back every few steps on a GPU (each read waits for the device), every step on CPU
            values = []
            if step == 1 or step % sync_every == 0 or step in points or step == n_steps:
                values = torch.stack(pending).tolist() if len(pending) > 1 else [float(pending[0])]
                pending = []
            train_time += time.perf_counter() - t0
            if step == 1:  # includes one-off costs (torch.compile, allocator warm-up): kept apart for benchmarks
                record.extra["first_step_s"] = train_time
            train_cpu += time.process_time() - c0
            record.extra["train_cpu_s"] = train_cpu
            steps_done = step
            for at, value in enumerate(values, start=step - len(values) + 1):
                window.append(value)
                initial_loss = value if initial_loss is None else initial_loss
                reason = _divergence(value, initial_loss, at, n_warm, settings)
                if reason:
                    return _finish(record, "failed", reason, t_start, train_time, step * B * T)
            if step in points:
                record.extra["train_loss"].append(float(np.mean(window)))
                window = []
                losses = evaluate(model, val, settings.eval_batch_size, autocast, fused=fused_head)
                record.steps.append(step)
                record.tokens_seen.append(step * B * T)
                for d, v in losses.items():
                    record.val_loss[d].append(v)
                bad = [d for d, v in losses.items() if not math.isfinite(v)]
                if bad:
                    return _finish(record, "failed", f"non-finite validation loss on {bad} at step {step}",
                                   t_start, train_time, step * B * T)
        record.final_loss = {d: v[-1] for d, v in record.val_loss.items()}
        if settings.evals:
            from mixopt.proxies.evals import run_evals

            t_eval = time.perf_counter()
            record.metrics = run_evals(model, data.tokenizer, list(settings.evals), eos_id=data.eos_id,
                                       max_len=T + 1, batch_size=settings.eval_batch_size, device=dev)
            record.extra["eval_seconds"] = time.perf_counter() - t_eval
        record.extra["epochs_consumed"] = {d: float(e) for d, e in sampler.epochs_consumed().items()}
        if config.is_moe:
            stats = [m.last_stats for m in model.modules() if isinstance(m, MoEFeedForward) and m.last_stats]
            record.extra["router_balance_loss"] = float(np.mean([float(s["balance_loss"]) for s in stats]))
        return _finish(record, "ok", None, t_start, train_time, n_steps * B * T)
    except Exception as e:  # a failing run must never crash the search that launched it
        first_line = (str(e).strip().splitlines() or [""])[0][:300]
        return _finish(record, "failed", f"{type(e).__name__}: {first_line}", t_start, train_time,
                       steps_done * B * T)
    finally:
        torch.set_num_threads(prev_threads)


@torch.no_grad()
def evaluate(model: nn.Module, val: dict[str, torch.Tensor], batch_size: int,
             autocast=contextlib.nullcontext, fused: bool = False) -> dict[str, float]:
    """Mean next-token loss (nats/token) per domain over fixed held-out sequences (N, T+1).

    Every domain's sequences go through the model together, ``batch_size`` rows at a time (a batch may
    span domains), and the per-row losses are summed back per domain. ``fused``: the output layer and the
    loss through ``linear_cross_entropy`` (CPU fp32) instead of materialised logits.
    """
    was_training = model.training
    model.eval()
    try:
        names = list(val)
        seqs_NT1 = torch.cat([val[d] for d in names])
        losses_N = []
        for i in range(0, seqs_NT1.shape[0], batch_size):
            chunk = seqs_NT1[i:i + batch_size]
            row_loss, _ = _next_token_loss(model, chunk, fused=fused, autocast=autocast, reduction="none")
            losses_N.append(row_loss.view(chunk.shape[0], -1).double().sum(dim=1).cpu())
        per_seq = torch.cat(losses_N) if losses_N else torch.zeros(0, dtype=torch.float64)
        out: dict[str, float] = {}
        start = 0
        for d in names:
            n = val[d].shape[0]
            count = n * (val[d].shape[1] - 1)
            out[d] = float(per_seq[start:start + n].sum()) / max(1, count)
            start += n
    finally:
        model.train(was_training)
    return out


def _next_token_loss(model, tokens_BT1: torch.Tensor, *, fused: bool, autocast, reduction: str = "mean",
                     forward=None):
    """(next-token cross-entropy of a batch (B, T+1), router aux loss). ``fused``: the output layer and the
    loss in one ``linear_cross_entropy``; otherwise materialised logits through ``forward`` (default the
    model; the trainer passes its compiled model). ``reduction`` as in ``F.cross_entropy``."""
    targets = tokens_BT1[:, 1:].reshape(-1)
    if fused:
        h_BTD, aux = model.features(tokens_BT1[:, :-1])
        return linear_cross_entropy(h_BTD.reshape(targets.shape[0], -1), model.head.weight, targets,
                                    reduction=reduction, impl="chunked"), aux
    with autocast():
        out = (forward or model)(tokens_BT1[:, :-1])
    return (F.cross_entropy(out.logits_BTV.float().reshape(targets.shape[0], -1), targets, reduction=reduction),
            out.aux_loss)


def _divergence(loss: float, initial: float, step: int, n_warm: int, s: TrainSettings) -> str | None:
    if not math.isfinite(loss):
        return f"non-finite training loss ({loss}) at step {step}"
    if s.max_loss is not None and loss > s.max_loss:
        return f"training loss {loss:.4g} above max_loss {s.max_loss:.4g} at step {step}"
    if step > n_warm and loss > s.explode_factor * initial:
        return f"loss exploded: {loss:.4g} > {s.explode_factor:g} x initial {initial:.4g} at step {step}"
    return None


def _finish(record: RunRecord, status: str, reason: str | None, t_start: float, train_time: float,
            tokens_done: int) -> RunRecord:
    record.status, record.reason = status, reason
    record.wall_time = time.perf_counter() - t_start
    record.tokens_per_s = tokens_done / train_time if train_time > 0 else 0.0
    return record


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MixoptError(f"device {device!r} asked for but CUDA is not available on this machine")
    if not device.startswith(("cpu", "cuda")):
        raise MixoptError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'")
    return torch.device(device)


def _make_optimizer(model: nn.Module, s: TrainSettings, dev: torch.device):
    """AdamW; weight decay on matrices only (not norm gains); fused kernels where torch has them. On CPU
    (fp32) :class:`~mixopt.proxies.optim.FusedAdamW`: the same updates without importing ``torch._dynamo``."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if dev.type == "cpu" and all(p.dtype == torch.float32 for p in model.parameters()):
        return FusedAdamW(groups, lr=s.lr, betas=s.betas)
    try:
        return torch.optim.AdamW(groups, lr=s.lr, betas=s.betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=s.lr, betas=s.betas, foreach=dev.type == "cuda")
