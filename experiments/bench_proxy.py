"""Proxy trainer throughput against a naive training loop, measured in the same run.

For the dense and MoE CPU-tiny presets, trains the same configuration on the demo corpus with

* ``proxies.train_proxy`` (SDPA attention, fused qkv / gate-up matmuls, routed experts through
  ``kernels.moe_experts`` "auto", fused AdamW), and
* a naive loop: plain ``nn.Module`` with separate q/k/v projections, hand-written masked softmax
  attention, a per-expert Python loop with boolean masks for the MoE, and a for-loop AdamW,

interleaving the two ``--repeats`` times and printing median tokens/s and their ratio (goal: >= 1.5x), the
MoE / dense step-time ratio at matched active parameters (goal <= 1.3), achieved FLOP/s as a fraction of
this machine's fp32 matmul peak (a big matmul timed in the same run, the faster of ``torch.mm`` and oneDNN; goal for the mid-size CPU
preset ``dense-mid``: >= 50%), and two ops alone, each against its plain-PyTorch reference: the MoE expert
op per implementation (forward + backward; goal for the CPU path: >= 1.5x the reference loop) and the
output layer + loss (``kernels.linear_cross_entropy`` chunked vs ``F.cross_entropy`` on materialised
logits). Every figure is given by the wall clock and by this process's CPU time: on a shared,
oversubscribed machine the wall clock mostly measures the other tenants, while CPU time (single-threaded)
still measures the work done.

    python experiments/bench_proxy.py --threads 1 --repeats 3 --tokens 65536 --mid-tokens 16384
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from mixopt.config import load_job_config
from mixopt.data import MixtureSampler, build_demo_corpus, prepare_data
from mixopt.kernels import available_impls, linear_cross_entropy, moe_experts
from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy
from mixopt.proxies.moe import router_losses


# --- the naive baseline: straightforward PyTorch, no fused paths --------------------------------------
class NaiveSwiGLU(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.w1, self.w3, self.w2 = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False), nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class NaiveMoE(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.cfg = cfg
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(NaiveSwiGLU(cfg.d_model, cfg.expert_d_ff) for _ in range(cfg.n_experts))

    def forward(self, x):
        B, T, D = x.shape
        x = x.reshape(B * T, D)
        logits = self.router(x).float()
        probs = logits.softmax(-1)
        top_p, idx = torch.topk(probs, self.cfg.top_k, dim=-1)
        top_p = top_p / top_p.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            mask = idx == e                                   # (N, K)
            rows = mask.any(-1).nonzero().squeeze(-1)
            if rows.numel():
                w = (top_p * mask).sum(-1)[rows].unsqueeze(-1)
                out = out.index_add(0, rows, expert(x[rows]) * w)
        bal, z = router_losses(logits, probs, idx)
        return out.view(B, T, D), self.cfg.aux_loss_weight * bal + self.cfg.z_loss_weight * z


class NaiveBlock(nn.Module):
    def __init__(self, cfg: ProxyConfig, layer: int):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.n1, self.n2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.ffn = NaiveMoE(cfg) if cfg.is_moe_layer(layer) else NaiveSwiGLU(d, cfg.d_ff)

    @staticmethod
    def norm(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * g

    @staticmethod
    def rope(x, cos, sin):
        x1, x2 = x.chunk(2, -1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        H = self.cfg.n_heads
        h = self.norm(x, self.n1)
        q, k, v = (p(h).view(B, T, H, D // H).transpose(1, 2) for p in (self.q, self.k, self.v))
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, D))
        y = self.ffn(self.norm(x, self.n2))
        y, aux = y if isinstance(y, tuple) else (y, x.new_zeros(()))
        return x + y, aux


class NaiveLM(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(NaiveBlock(cfg, i) for i in range(cfg.n_layers))
        self.nf = nn.Parameter(torch.ones(cfg.d_model))
        hd = cfg.head_dim
        inv = 1.0 / cfg.rope_theta ** (torch.arange(0, hd, 2).float() / hd)
        ang = torch.outer(torch.arange(cfg.max_seq_len).float(), inv)
        self.cos, self.sin = ang.cos(), ang.sin()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        T = idx.shape[1]
        x, aux = self.emb(idx), 0.0
        for b in self.blocks:
            x, a = b(x, self.cos[:T], self.sin[:T])
            aux = aux + a
        return NaiveBlock.norm(x, self.nf) @ self.emb.weight.T, aux


def naive_tokens_per_s(cfg, data, weights, *, tokens, seed, settings: TrainSettings) -> tuple[float, float]:
    """tokens/s of the training steps (sampling included, as in the trainer): (wall clock, process CPU time)."""
    cpu = 0.0
    torch.manual_seed(seed)
    model = NaiveLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                            betas=settings.betas, foreach=False, fused=False)
    sampler = MixtureSampler(data, weights, seq_len=settings.seq_len, batch_size=settings.batch_size, seed=seed)
    steps = tokens // (settings.seq_len * settings.batch_size)
    elapsed = 0.0
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        batch, _ = sampler.next_batch()
        logits, aux = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), batch[:, 1:].reshape(-1)) + aux
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip, foreach=False)
        opt.step()
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
    n = steps * settings.seq_len * settings.batch_size
    return n / elapsed, n / cpu


def matmul_peak_flops(n: int = 1536, repeats: int = 7, clock=time.process_time) -> float:
    """fp32 FLOP/s of a big square matmul, the faster of the two libraries inside torch: ``torch.mm``
    (MKL on x86) and oneDNN (what ``mixopt.kernels.linear`` uses where it is faster), so that MFU is
    measured against the best this machine does, not against the slower library (median over repeats;
    CPU time by default)."""
    from mixopt.kernels.linear import matmul_nt, onednn_available

    a, b = torch.randn(n, n), torch.randn(n, n)
    ops = [lambda: a @ b] + ([lambda: matmul_nt(a, b, impl="onednn")] if onednn_available() else [])
    best = 0.0
    for op in ops:
        op()
        times = []
        for _ in range(repeats):
            t0 = clock()
            op()
            times.append(clock() - t0)
        best = max(best, 2 * n**3 / statistics.median(times))
    return best


def expert_op_ms(cfg: ProxyConfig, tokens: int, repeats: int) -> dict[str, float]:
    """Median CPU ms of the MoE expert op (forward + backward) per implementation, interleaved."""
    g = torch.Generator().manual_seed(0)
    E, D, Fe, K = cfg.n_experts, cfg.d_model, cfg.expert_d_ff, cfg.top_k
    x = torch.randn(tokens, D, generator=g).requires_grad_()
    idx = torch.topk(torch.randn(tokens, E, generator=g), K).indices
    w = torch.rand(tokens, K, generator=g).requires_grad_()
    ps = [(0.02 * torch.randn(*s, generator=g)).requires_grad_() for s in ((E, D, Fe), (E, D, Fe), (E, Fe, D))]
    impls = available_impls(x, ps[0])
    floor = _matmul_floor(x.detach(), idx, [p.detach() for p in ps])
    times = {i: [] for i in [*impls, "matmuls only"]}
    for _ in range(repeats):
        for impl in impls:
            t0 = time.process_time()
            moe_experts(x, idx, w, *ps, impl=impl).sum().backward()
            times[impl].append(time.process_time() - t0)
        t0 = time.process_time()
        floor()
        times["matmuls only"].append(time.process_time() - t0)
    return {i: 1e3 * statistics.median(t) for i, t in times.items()}


def _matmul_floor(x, idx, ps):
    """Only the op's matmuls (3 forward, 6 backward per expert, on contiguous per-expert slices, outputs
    preallocated): no routing, no elementwise work, no autograd. The reference loop runs the same matmuls,
    so reference / this is the most any implementation built on ``torch.mm`` could gain."""
    gate, up, down = ps
    E, F_ = gate.shape[0], gate.shape[2]
    counts = torch.bincount(idx.reshape(-1), minlength=E).tolist()
    xs = [torch.randn(n, x.shape[1]) for n in counts]
    hs = [torch.randn(n, F_) for n in counts]
    out_d, out_f = [torch.empty(n, x.shape[1]) for n in counts], [torch.empty(n, F_) for n in counts]
    gw_f, gw_d = torch.empty_like(gate[0]), torch.empty_like(down[0])

    def run():
        for e in range(E):
            xe, he, od, of = xs[e], hs[e], out_d[e], out_f[e]
            torch.mm(xe, gate[e], out=of)                                    # forward: gate, up, down
            torch.mm(xe, up[e], out=of)
            torch.mm(he, down[e], out=od)
            torch.mm(he.T, od, out=gw_d)                                     # backward: down's two
            torch.mm(od, down[e].T, out=of)
            torch.mm(xe.T, he, out=gw_f)                                     # gate's and up's weight grads
            torch.mm(xe.T, he, out=gw_f)
            torch.mm(he, gate[e].T, out=od)                                  # their input grads
            torch.mm(he, up[e].T, out=od)
    return run


def loss_op_ms(cfg: ProxyConfig, tokens: int, repeats: int) -> dict[str, float]:
    """Median CPU ms of output layer + mean cross-entropy, forward + backward: chunked vs materialised logits."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(tokens, cfg.d_model, generator=g).requires_grad_()
    w = (0.02 * torch.randn(cfg.vocab_size, cfg.d_model, generator=g)).requires_grad_()
    t = torch.randint(0, cfg.vocab_size, (tokens,), generator=g)
    paths = {"logits": lambda: F.cross_entropy(h @ w.T, t), "chunked": lambda: linear_cross_entropy(h, w, t)}
    times = {k: [] for k in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t0 = time.process_time()
            fn().backward()
            times[name].append(time.process_time() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def demo_data(tmp: str, vocab: int):
    """The offline demo corpus (seed 0) prepared under ``tmp`` with a ``vocab``-token tokenizer."""
    build_demo_corpus(os.path.join(tmp, "demo"), seed=0)
    job = load_job_config(os.path.join(tmp, "demo", "job.yaml"))
    job.workspace = os.path.join(tmp, "ws")
    job.tokenizer.vocab_size = vocab
    return prepare_data(job, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=65_536)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--presets", nargs="+", default=["dense-tiny", "moe-tiny", "dense-mid"])
    ap.add_argument("--mid-tokens", type=int, default=16_384, help="tokens per run for the *-mid presets")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_data(tmp, args.vocab)
        settings = TrainSettings(seq_len=args.seq_len, batch_size=args.batch_size, eval_points=1, eval_tokens=512)
        weights = data.prior()
        print(f"threads={args.threads} tokens/run={args.tokens} seq_len={args.seq_len} batch={args.batch_size} "
              f"vocab={data.vocab_size} repeats={args.repeats} load_avg={os.getloadavg()[0]:.1f}")
        peaks = [(matmul_peak_flops(clock=time.perf_counter), matmul_peak_flops())]
        results: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.repeats):
            for preset in args.presets:
                cfg = ProxyConfig.preset(preset).with_vocab(data.vocab_size)
                tokens = args.mid_tokens if preset.endswith("-mid") else args.tokens
                r = train_proxy(cfg, data, weights, tokens=tokens, seed=0, settings=settings, threads=args.threads)
                assert r.ok, r.reason
                proxy_cpu = r.extra["tokens_trained"] / r.extra["train_cpu_s"]
                naive, naive_cpu = naive_tokens_per_s(cfg, data, weights, tokens=tokens, seed=0, settings=settings)
                res = results.setdefault(preset, {k: [] for k in ("proxy", "naive", "ratio", "proxy_cpu",
                                                                    "naive_cpu", "ratio_cpu")})
                res["proxy"].append(r.tokens_per_s)
                res["naive"].append(naive)
                res["ratio"].append(r.tokens_per_s / naive)
                res["proxy_cpu"].append(proxy_cpu)
                res["naive_cpu"].append(naive_cpu)
                res["ratio_cpu"].append(proxy_cpu / naive_cpu)
        peaks.append((matmul_peak_flops(clock=time.perf_counter), matmul_peak_flops()))
        peak, peak_cpu = (statistics.median(p) for p in zip(*peaks, strict=True))
        print(f"fp32 matmul peak (best of torch.mm and oneDNN): {peak / 1e9:.1f} GFLOP/s wall, "
              f"{peak_cpu / 1e9:.1f} GFLOP/s per CPU second")
        med = {p: {k: statistics.median(v) for k, v in d.items()} for p, d in results.items()}
        for preset, m in med.items():
            fpt = ProxyConfig.preset(preset).with_vocab(data.vocab_size).flops_per_token(args.seq_len)
            print(f"{preset:10s} proxy {m['proxy']:9.0f} tok/s  naive {m['naive']:9.0f} tok/s  "
                  f"speedup x{m['ratio']:.2f} (median of per-repeat ratios)  "
                  f"MFU {fpt * m['proxy'] / peak:.1%}")
            print(f"{'':10s} by CPU time:            proxy {m['proxy_cpu']:9.0f} tok/s  naive {m['naive_cpu']:9.0f} "
                  f"tok/s  speedup x{m['ratio_cpu']:.2f}  MFU {fpt * m['proxy_cpu'] / peak_cpu:.1%}")
        if "dense-tiny" in med and "moe-tiny" in med:
            ratio = med["dense-tiny"]["proxy"] / med["moe-tiny"]["proxy"]
            ratio_cpu = med["dense-tiny"]["proxy_cpu"] / med["moe-tiny"]["proxy_cpu"]
            print(f"MoE step time / dense step time (matched active params): {ratio:.2f} wall, {ratio_cpu:.2f} CPU time")
        n_tok = args.seq_len * args.batch_size
        for preset in ("moe-tiny", "moe-mid"):
            ops = expert_op_ms(ProxyConfig.preset(preset), n_tok, 3 * args.repeats)
            print(f"MoE expert op fwd+bwd CPU ms ({preset} shapes, {n_tok} tokens): "
                  + ", ".join(f"{k} {v:.2f} (x{ops['reference'] / v:.2f})" for k, v in ops.items())
                  + "  [matmuls only: the bound of any torch.mm implementation]")
        for preset in ("dense-tiny", "dense-mid"):
            cfg = ProxyConfig.preset(preset).with_vocab(data.vocab_size)
            lo = loss_op_ms(cfg, n_tok, 3 * args.repeats)
            print(f"output layer + loss fwd+bwd CPU ms ({preset}, {n_tok} x {cfg.d_model} x {cfg.vocab_size}): "
                  f"logits {lo['logits']:.2f}, chunked {lo['chunked']:.2f} (x{lo['logits'] / lo['chunked']:.2f})")
        print(f"load_avg at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
