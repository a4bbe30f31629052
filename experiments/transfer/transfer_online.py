"""Training with an online mixer: the loop of ``proxies.train_proxy`` plus a ``mixopt.online`` mixer that
changes the ``MixtureSampler``'s weights every ``update_every`` steps (through ``mixopt.online``'s
plain-PyTorch helper ``OnlineMixing``).

``train_proxy`` has no per-step hook, so this is a small loop of its own that reuses the proxies' pieces
(``build_model``, ``evaluate``, the LR schedule and evaluation points) with the same initialisation
(``torch.manual_seed(seed)`` before ``build_model``), the same AdamW grouping, gradient clipping and
sampler seed, so a static mixture trained here matches ``train_proxy``'s recipe. The mixer sees the
per-domain training-loss sums and token counts of the batches since its last update (per-sequence losses
from the per-token cross-entropy already computed for the training step; no extra forward pass). Returns a ``RunRecord``-shaped dict with ``extra["weights_trajectory"]``.
"""

from __future__ import annotations

import math
import time
import uuid

import numpy as np

__all__ = ["online_record"]


def online_record(config, data, weights, *, tokens: int, seed: int, settings, mixer: str = "default",
                  update_every: int = 10, params: dict | None = None) -> dict:
    """Train ``config`` for ``tokens`` tokens starting from ``weights`` with mixer ``mixer`` adapting them.

    Returns a dict with the ``RunRecord`` fields (``final_loss`` etc.); ``status="failed"`` with a reason
    on a non-finite loss (never raises once training started).
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mixopt.data import MixtureSampler, validate_weights
    from mixopt.online import make_mixer
    from mixopt.online.torch_loop import OnlineMixing
    from mixopt.proxies import build_model, evaluate
    from mixopt.proxies.schedule import eval_steps, lr_factor

    t_start = time.perf_counter()
    domains = list(data.domains)
    w0 = validate_weights(weights, domains)
    config = config.with_vocab(data.vocab_size)
    if settings.seq_len > config.max_seq_len:
        config = config.replace(max_seq_len=settings.seq_len)
    B, T = settings.batch_size, settings.seq_len
    n_steps = int(tokens) // (B * T)
    counts = config.param_counts()
    points = eval_steps(n_steps, settings.eval_points)
    rec = {"run_id": uuid.uuid4().hex[:12], "weights": dict(zip(domains, map(float, w0), strict=True)),
           "preset": config.name, "seed": int(seed), "tokens": int(tokens), "n_params": counts["total"],
           "n_active_params": counts["active"], "n_nonembed_params": counts["non_embedding"],
           "flops": config.flops_per_token(T) * n_steps * B * T, "steps": [], "tokens_seen": [],
           "val_loss": {d: [] for d in domains}, "final_loss": {}, "wall_time": 0.0, "tokens_per_s": 0.0,
           "status": "ok", "reason": None,
           "extra": {"online_mixer": mixer, "update_every": update_every, "weights_trajectory": []}}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr, betas=settings.betas)
    sampler = MixtureSampler(data, w0, seq_len=T, batch_size=B, seed=seed)
    mix = make_mixer(mixer, domains, initial_weights=w0, seed=seed, **(params or {}))
    # sets the sampler's weights; total_steps: the run's length, for the default mixer's cooldown
    mixing = OnlineMixing(mix, sampler, update_every=update_every, sync=False, total_steps=n_steps)
    val = data.val_sequences(T, settings.eval_tokens)
    n_tok_B = np.full(B, T)
    train_time = 0.0
    for step in range(1, n_steps + 1):
        t0 = time.perf_counter()
        lr = settings.lr * lr_factor(step - 1, n_steps, schedule=settings.schedule, warmup=settings.warmup,
                                     min_lr_ratio=settings.min_lr_ratio, decay_frac=settings.decay_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        tokens_BT1, dom_B = sampler.next_batch()
        out = model(tokens_BT1[:, :-1])
        tok_loss_BT = F.cross_entropy(out.logits_BTV.float().reshape(-1, config.vocab_size),
                                      tokens_BT1[:, 1:].reshape(-1), reduction="none").view(B, T)
        loss = tok_loss_BT.mean() + out.aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        train_time += time.perf_counter() - t0
        if not math.isfinite(float(loss.detach())):
            rec.update(status="failed", reason=f"non-finite training loss at step {step}")
            break
        mixing.observe(tok_loss_BT.detach().mean(1), dom_B, n_tok_B)
        if step < n_steps:
            mixing.step(step)
        if step in points:
            losses = evaluate(model, val, settings.eval_batch_size)
            rec["steps"].append(step)
            rec["tokens_seen"].append(step * B * T)
            for d, v in losses.items():
                rec["val_loss"][d].append(v)
    traj = [(int(st), dict(zip(domains, map(float, w), strict=True))) for st, w in mixing.history]
    rec["extra"]["weights_trajectory"] = traj
    if rec["status"] == "ok":
        rec["final_loss"] = {d: v[-1] for d, v in rec["val_loss"].items()}
        w = np.array([[x[1][d] for d in domains] for x in traj])
        rec["extra"]["mean_weights"] = dict(zip(domains, map(float, w.mean(0)), strict=True))
        rec["extra"]["final_weights"] = traj[-1][1]
    rec["wall_time"] = time.perf_counter() - t_start
    rec["tokens_per_s"] = n_steps * B * T / train_time if train_time > 0 else 0.0
    return rec
