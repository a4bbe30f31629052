"""Benchmark the online mixers on synthetic domains whose entropy is known, so excess loss is exact.

Four domains over disjoint 16-token alphabets (one shared model and vocabulary of 64):
  easy   -- order-1 Markov chain, peaked rows (Dirichlet 0.1)
  medium -- order-2 Markov chain (Dirichlet 0.3)
  hard   -- order-3 Markov chain, 4096 contexts (Dirichlet 0.5): data-hungry
  noise  -- i.i.d. uniform: unlearnable, entropy ln 16
Held-out excess loss = model cross-entropy minus the true conditional entropy of the very same held-out
tokens (-log P_true(x_t | context)), averaged over positions t >= 4.

Every method trains the same tiny window-MLP language model (context 4) for a fixed number of steps with a
cosine-decaying LR, through :class:`mixopt.online.OnlineMixing` (per-sequence training losses, update
every ``--update-every`` steps). Seeds are paired: seed s gives every method the same init and data pools.

    python experiments/bench_online.py --seeds 5 --steps 300
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn

from mixopt.online import OnlineMixing, make_mixer, per_sequence_loss

DOMAINS = ["easy", "medium", "hard", "noise"]
ALPHA = 8  # symbols per domain
V = ALPHA * len(DOMAINS)
CTX = 4
SPEC = {"easy": (1, 0.1), "medium": (2, 0.3), "hard": (3, 0.3), "noise": (0, None)}


class Domain:
    """An order-m Markov chain over ALPHA symbols (m = 0 with no table: uniform noise)."""

    def __init__(self, index: int, order: int, conc: float | None, rng: np.random.Generator):
        self.offset, self.order = index * ALPHA, order
        self.table = None if conc is None else rng.dirichlet(np.full(ALPHA, conc), size=ALPHA**order)

    def sample(self, n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens (n, length) int64 in the domain's alphabet, true -log p (n, length))``."""
        x = np.zeros((n, length), dtype=np.int64)
        nll = np.full((n, length), math.log(ALPHA))
        if self.table is None:
            x[:] = rng.integers(0, ALPHA, size=(n, length))
            return x + self.offset, nll
        x[:, : self.order] = rng.integers(0, ALPHA, size=(n, self.order))
        cum = np.cumsum(self.table, axis=1)
        for t in range(self.order, length):
            ctx = np.zeros(n, dtype=np.int64)
            for j in range(self.order):
                ctx = ctx * ALPHA + x[:, t - self.order + j]
            u = rng.random(n)[:, None]
            x[:, t] = np.minimum((u > cum[ctx]).sum(axis=1), ALPHA - 1)
            nll[:, t] = -np.log(self.table[ctx, x[:, t]])
        return x + self.offset, nll


class WindowLM(nn.Module):
    """Predict token t from tokens t-4..t-1 (PAD before the start): embeddings -> MLP -> logits."""

    def __init__(self, d: int = 24, hidden: int = 192):
        super().__init__()
        self.emb = nn.Embedding(V + 1, d)
        self.mlp = nn.Sequential(nn.Linear(CTX * d, hidden), nn.GELU(), nn.Linear(hidden, V))

    def forward(self, x_BT: torch.Tensor) -> torch.Tensor:
        b, t = x_BT.shape
        pad = torch.full((b, CTX), V, dtype=x_BT.dtype)
        win = torch.cat([pad, x_BT[:, :-1]], 1).unfold(1, CTX, 1)  # (B, T, CTX): tokens before t
        return self.mlp(self.emb(win).reshape(b, t, -1))  # (B, T, V)


class PoolSampler:
    """Draws sequences from pre-generated per-domain pools, domains chosen by ``weights`` (seeded)."""

    def __init__(self, pools: list[np.ndarray], batch_size: int, seed: int):
        self.pools, self.batch_size = pools, batch_size
        self.domains = list(DOMAINS)
        self.weights = np.full(len(pools), 1.0 / len(pools))
        self.rng = np.random.default_rng(seed)
        self.next_row = np.zeros(len(pools), dtype=np.int64)

    def set_weights(self, w) -> None:
        self.weights = np.asarray(w, dtype=np.float64)

    def next_batch(self):
        dom = self.rng.choice(len(self.pools), size=self.batch_size, p=self.weights)
        rows = []
        for d in dom:
            rows.append(self.pools[d][self.next_row[d] % len(self.pools[d])])
            self.next_row[d] += 1
        return torch.from_numpy(np.stack(rows)), torch.from_numpy(dom)


def make_data(seed: int, n_train: int, n_val: int, seq: int):
    table_rng = np.random.default_rng(1234)  # the domains themselves are fixed across seeds
    doms = [Domain(i, *SPEC[d], table_rng) for i, d in enumerate(DOMAINS)]
    rng = np.random.default_rng(seed)
    train = [d.sample(n_train, seq, rng)[0] for d in doms]
    val = [d.sample(n_val, seq, np.random.default_rng(10_000 + i)) for i, d in enumerate(doms)]
    return train, val


def excess(model: nn.Module, val, raw: bool = False) -> np.ndarray:
    """``(k,)`` held-out excess loss (nats/token); the model's cross-entropy itself when ``raw``."""
    out = []
    with torch.no_grad():
        for x, nll in val:
            xt = torch.from_numpy(x)
            logits = model(xt)
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, V), xt.reshape(-1), reduction="none")
            ce = ce.view(x.shape)[:, CTX:].numpy()
            out.append(float(ce.mean() - (0.0 if raw else nll[:, CTX:].mean())))
    return np.array(out)


def train(method: str, weights, seed: int, args, train_pools, val, reference=None) -> dict:
    torch.manual_seed(seed)
    model = WindowLM()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / args.steps, 1.0))))
    params = dict(args.default_params) if method == "default" else {}
    if reference is not None:
        params["reference_loss"] = reference
    mixer = make_mixer(method, DOMAINS, initial_weights=weights, seed=seed, **params)
    sampler = PoolSampler(train_pools, args.batch, seed)
    mixing = OnlineMixing(mixer, sampler, update_every=args.update_every)
    upd_time, n_upd = 0.0, 0
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        tokens, dom = sampler.next_batch()
        logits = model(tokens)
        loss_tok = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens.reshape(-1))
        opt.zero_grad()
        loss_tok.backward()
        opt.step()
        sched.step()
        loss_seq, n_tok = per_sequence_loss(logits[:, CTX:], tokens[:, CTX:])
        u0 = time.perf_counter()
        mixing.observe(loss_seq, dom, n_tok)
        if mixing.step(step) is not None:
            n_upd += 1
        upd_time += time.perf_counter() - u0
    wall = time.perf_counter() - t0
    return {"excess": excess(model, val), "val_loss": excess(model, val, raw=True), "weights": np.array([w for _, w in mixing.history]),
            "mix_s": upd_time, "wall_s": wall, "n_upd": n_upd}


def demo(args) -> None:
    """The same comparison on the demo corpus with the CPU-tiny dense proxy (held-out loss, nats/token)."""
    import tempfile

    from mixopt.config import load_job_config
    from mixopt.data import MixtureSampler, build_demo_corpus, prepare_data
    from mixopt.proxies import ProxyConfig, build_model, evaluate

    work = tempfile.mkdtemp(prefix="bench_online_demo_")
    build_demo_corpus(work, seed=0)
    cfg = load_job_config(f"{work}/job.yaml")
    cfg.workspace, cfg.tokenizer.vocab_size = f"{work}/ws", 512
    data = prepare_data(cfg, progress=False)
    val = data.val_sequences(args.seq, 8192)
    methods = args.methods.split(",")
    res: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        for m in methods:
            torch.manual_seed(seed)
            model = build_model(ProxyConfig.preset("dense-tiny").with_vocab(data.vocab_size))
            opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / args.steps, 1.0))))
            sampler = MixtureSampler(data, np.full(len(data.domains), 1 / len(data.domains)), seq_len=args.seq,
                                     batch_size=args.batch, seed=seed)
            params = dict(args.default_params) if m == "default" else {}
            # Every mixer starts from uniform, like stratified (the demo's token-share prior has 27% noise).
            mixing = OnlineMixing(make_mixer(m, data.domains, seed=seed, **params), sampler,
                                  update_every=args.update_every)
            for step in range(1, args.steps + 1):
                tokens, dom = sampler.next_batch()
                logits = model(tokens[:, :-1]).logits_BTV
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                seq_loss, n_tok = per_sequence_loss(logits, tokens[:, 1:])
                mixing.observe(seq_loss, dom, n_tok)
                mixing.step(step)
            ev = evaluate(model, val, 32)
            res[m].append(np.array([ev[d] for d in data.domains]))
            print(f"seed {seed} {m}: " + " ".join(f"{d}={ev[d]:.3f}" for d in data.domains)
                  + "  final w " + " ".join(f"{x:.2f}" for x in mixing.history[-1][1]), flush=True)
    base = np.array([r.mean() for r in res[methods[0]]])
    print(f"\ndemo corpus, dense-tiny, {args.steps} steps x {args.batch} x {args.seq}, all mixers start uniform; "
          f"domains {data.domains}")
    for m in methods:
        avg = np.array([r.mean() for r in res[m]])
        d = avg - base
        se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"{m:12s} mean val loss {avg.mean():.4f}  diff vs {methods[0]} {d.mean():+.4f} (2se {2 * se:.4f})  "
              + " ".join(f"{x:.3f}" for x in np.mean(res[m], axis=0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed (5 = seeds not used for tuning)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--update-every", type=int, default=10)
    ap.add_argument("--methods", default="stratified,static,odm,exp3,aioli,default,default+ref")
    ap.add_argument("--default-params", type=json.loads, default={},
                    help='JSON overrides for the default mixer, e.g. \'{"temperature": 3}\'')
    ap.add_argument("--demo", action="store_true", help="demo corpus + dense-tiny proxy instead of synthetic")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.demo:
        return demo(args)
    statics = {"static[.1,.3,.5,.1]": [0.1, 0.3, 0.5, 0.1], "static[.1,.2,.6,.1]": [0.1, 0.2, 0.6, 0.1],
               "static[.2,.3,.4,.1]": [0.2, 0.3, 0.4, 0.1]}
    runs: list[tuple[str, str, dict | None]] = []
    for m in args.methods.split(","):
        if m == "static":
            runs += [(name, "static", w) for name, w in statics.items()]
        elif m == "default+ref":  # reference losses = the stratified run's held-out losses (DoReMi-style)
            runs.append((m, "default", "ref"))
        else:
            runs.append((m, m, None))
    res: dict[str, list[dict]] = {name: [] for name, _, _ in runs}
    n_seq = args.steps * args.batch + 1
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        pools, val = make_data(seed, n_seq, 64, args.seq)
        for name, method, w in runs:
            if w == "ref":
                ref = res["stratified"][-1]["val_loss"]
                res[name].append(train(method, None, seed, args, pools, val, reference=ref))
            else:
                res[name].append(train(method, w, seed, args, pools, val))
        print(f"seed {seed} done", flush=True)
    avg = {n: np.array([r["excess"].mean() for r in rs]) for n, rs in res.items()}
    base = avg["stratified"]
    static_names = [n for n in res if n.startswith("static[")]
    best_static = min(static_names, key=lambda n: avg[n].mean()) if static_names else None
    print(f"\n{args.seeds} paired seeds, {args.steps} steps x {args.batch} seqs x {args.seq} tokens, "
          f"update every {args.update_every} steps")
    print(f"{'method':22s} {'avg excess':>11s} {'ratio vs strat':>15s} {'paired diff (2se)':>18s}  "
          + " ".join(f"{d:>7s}" for d in DOMAINS) + "   final weights (mean over seeds)")
    for n, rs in res.items():
        ratio = avg[n] / base
        diff = avg[n] - base
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        per = np.mean([r["excess"] for r in rs], axis=0)
        wf = np.mean([r["weights"][-1] for r in rs], axis=0)
        tag = " (best static)" if n == best_static else ""
        print(f"{n + tag:22s} {avg[n].mean():11.4f} {ratio.mean():15.3f} {diff.mean():+9.4f} ({2 * se:.4f}) "
              + " ".join(f"{x:7.4f}" for x in per) + "   " + " ".join(f"{x:.2f}" for x in wf))
    if "default" in res:
        rs = res["default"]
        us = 1e6 * sum(r["mix_s"] for r in rs) / max(1, sum(args.steps for _ in rs))
        upd = 1e6 * sum(r["mix_s"] for r in rs) / max(1, sum(r["n_upd"] for r in rs))
        share = sum(r["mix_s"] for r in rs) / sum(r["wall_s"] for r in rs)
        print(f"\ndefault mixer overhead: {us:.1f} us/step (observe+step), {upd:.0f} us per update interval, "
              f"{100 * share:.2f}% of step time")
    mixer = make_mixer("default", DOMAINS)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(2000):
        mixer.update(i, rng.random(4) * 100, np.full(4, 100.0))
    print(f"default mixer.update alone: {1e6 * (time.perf_counter() - t0) / 2000:.1f} us")


if __name__ == "__main__":
    main()
