"""Benchmark the online mixers on synthetic domains whose entropy is known, so excess loss is exact.

Each domain is a Markov chain over its own 8-symbol alphabet (one shared model and vocabulary): order 0
is i.i.d. uniform noise (unlearnable, entropy ln 8), order m > 0 draws each context's next-symbol
distribution from Dirichlet(conc) (higher order = more contexts = more data-hungry). Four settings:

  base      easy (order 1, conc 0.1), medium (2, 0.3), hard (3, 0.3), noise; 300 steps
  balanced  four order-2 chains of equal difficulty (conc 0.3): stratified is close to the best mixture
  many      eight domains: two easy, two medium, two hard, two noise; 300 steps
  long      the base domains for 600 steps (the easy domains saturate; the hard one keeps learning)

Held-out excess loss = model cross-entropy minus the true conditional entropy of the very same held-out
tokens (-log P_true(x_t | context)), averaged over positions t >= 4 and over domains.

Every method trains the same tiny window-MLP language model (context 4) with a cosine-decaying LR through
:class:`mixopt.online.OnlineMixing` (per-sequence training losses, update every ``--update-every`` steps).
Seeds are paired: seed s gives every method the same init and data pools. Seeds 0-4 tune, 5-9 report;
10-14 were first used on 2026-12-03 (tenth session), as a second held-out set.

Search-informed methods: once per setting, a "proxy search" trains 8 static mixtures (uniform + 7 seeded
Dirichlet draws) on search seed 1000 (not a tuning or test seed) and picks the best; ``static:search``
trains that mixture, ``<mixer>+ref`` runs the mixer from it with ``reference=`` the curves a search job
writes into its proposal (:func:`mixopt.curves.proposal_curves`: BiMix fitted to all 8 runs' held-out curves,
read at the chosen mixture, ending at that run's observed losses). The search is cached in ``--out``.

    python experiments/bench_online.py --seeds 5 --seed-offset 5          # the report (held-out seeds)
    python experiments/bench_online.py --settings base --methods stratified,ado,'ado@{"s": 0}'
    python experiments/bench_online.py --settings base,many,long --refine-hindsight 45   # see HINDSIGHT

``static:hindsight`` trains the best static mixture found on tuning seeds (``HINDSIGHT``: by hand, then refined
by Nelder-Mead): how far a fixed mixture chosen knowing the answer gets, for scale.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from mixopt.curves import proposal_curves
from mixopt.online import OnlineMixing, make_mixer, per_sequence_loss
from mixopt.runs import RunTable

ALPHA = 8  # symbols per domain
CTX = 4
BASE = [("easy", 1, 0.1), ("medium", 2, 0.3), ("hard", 3, 0.3), ("noise", 0, None)]
SETTINGS = {
    "base": (BASE, 300),
    "balanced": ([("a", 2, 0.3), ("b", 2, 0.3), ("c", 2, 0.3), ("d", 2, 0.3)], 300),
    "many": ([("easy", 1, 0.1), ("easy2", 1, 0.2), ("medium", 2, 0.3), ("medium2", 2, 0.5), ("hard", 3, 0.3),
              ("hard2", 3, 0.5), ("noise", 0, None), ("noise2", 0, None)], 300),
    "long": (BASE, 600),
}
SEARCH_SEED = 1000
# ``static:hindsight``: the best static mixture for each setting on tuning seeds 0-2, a bound on what a fixed
# mixture reaches, not a method (it is chosen knowing the outcome). Found in two steps: by hand (2-6 candidates
# near each domain's remaining excess loss under stratified), then refined by Nelder-Mead on the softmax
# logits from there (``--refine-hindsight 45``: 45 mixtures per setting, the mean ratio to stratified over
# seeds 0-2): base 0.804 -> 0.794, many 0.917 -> 0.894, long 0.733 -> 0.719 on those seeds (experiments/LOG.md,
# 2026-12-03 ninth session). balanced stays stratified (four identical chains).
HINDSIGHT = {"base": [0.074, 0.33, 0.546, 0.05], "balanced": [0.25, 0.25, 0.25, 0.25],
             "many": [0.045, 0.056, 0.185, 0.17, 0.315, 0.145, 0.044, 0.04], "long": [0.056, 0.248, 0.652, 0.044]}
METHODS = "stratified,static:search,odm,exp3,aioli,progress,ado,default+ref"


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

    def __init__(self, vocab: int, d: int = 24, hidden: int = 192):
        super().__init__()
        self.vocab = vocab
        self.emb = nn.Embedding(vocab + 1, d)
        self.mlp = nn.Sequential(nn.Linear(CTX * d, hidden), nn.GELU(), nn.Linear(hidden, vocab))

    def forward(self, x_BT: torch.Tensor) -> torch.Tensor:
        b, t = x_BT.shape
        pad = torch.full((b, CTX), self.vocab, dtype=x_BT.dtype)
        win = torch.cat([pad, x_BT[:, :-1]], 1).unfold(1, CTX, 1)  # (B, T, CTX): tokens before t
        return self.mlp(self.emb(win).reshape(b, t, -1))  # (B, T, V)


class PoolSampler:
    """Draws sequences from pre-generated per-domain pools, domains chosen by ``weights`` (seeded)."""

    def __init__(self, pools: list[np.ndarray], domains: list[str], batch_size: int, seed: int):
        self.pools, self.domains, self.batch_size = pools, domains, batch_size
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


def make_data(setting: str, seed: int, n_train: int, n_val: int, seq: int):
    spec = SETTINGS[setting][0]
    table_rng = np.random.default_rng(1234 + (0 if spec is BASE else sorted(SETTINGS).index(setting)))
    doms = [Domain(i, order, conc, table_rng) for i, (_, order, conc) in enumerate(spec)]
    rng = np.random.default_rng(seed)
    train = [d.sample(n_train, seq, rng)[0] for d in doms]
    val = [d.sample(n_val, seq, np.random.default_rng(10_000 + i)) for i, d in enumerate(doms)]
    return train, val


def evaluate(model: WindowLM, val) -> tuple[np.ndarray, np.ndarray]:
    """``(excess (k,), cross-entropy (k,))`` on the held-out sequences, positions >= CTX (nats/token)."""
    ex, ce_out = [], []
    with torch.no_grad():
        for x, nll in val:
            xt = torch.from_numpy(x)
            logits = model(xt)
            ce = nn.functional.cross_entropy(logits.reshape(-1, model.vocab), xt.reshape(-1), reduction="none")
            ce = float(ce.view(x.shape)[:, CTX:].mean())
            ce_out.append(ce)
            ex.append(ce - float(nll[:, CTX:].mean()))
    return np.array(ex), np.array(ce_out)


def train(setting: str, name: str, params: dict, weights, seed: int, args, pools, val,
          curve_points: int = 0) -> dict:
    """One run; ``curve_points`` > 0 also records the held-out cross-entropy at that many steps."""
    spec, steps = SETTINGS[setting]
    domains = [d for d, _, _ in spec]
    torch.manual_seed(seed)
    model = WindowLM(ALPHA * len(domains))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    mixer = make_mixer(name, domains, initial_weights=weights, seed=seed, **params)
    sampler = PoolSampler(pools, domains, args.batch, seed)
    mixing = OnlineMixing(mixer, sampler, update_every=args.update_every, total_steps=steps)
    points = set(np.unique(np.geomspace(steps / 10, steps, curve_points).round().astype(int))) if curve_points else set()
    curve = []
    mix_s, n_upd, t0 = 0.0, 0, time.perf_counter()
    for step in range(1, steps + 1):
        tokens, dom = sampler.next_batch()
        logits = model(tokens)
        loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab), tokens.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        loss_seq, n_tok = per_sequence_loss(logits[:, CTX:], tokens[:, CTX:])
        u0 = time.perf_counter()
        mixing.observe(loss_seq, dom, n_tok)
        if mixing.step(step) is not None:
            n_upd += 1
        mix_s += time.perf_counter() - u0
        if step in points:
            curve.append((step * args.batch * (args.seq - CTX), evaluate(model, val)[1]))
    ex, ce = evaluate(model, val)
    return {"excess": ex, "val_loss": ce, "weights": np.array([w for _, w in mixing.history]), "curve": curve,
            "mix_s": mix_s, "wall_s": time.perf_counter() - t0, "steps": steps, "n_upd": n_upd}


def search(setting: str, args) -> dict:
    """The setting's "proxy search" on SEARCH_SEED (cached): best of 8 static mixtures + its fitted curves."""
    spec, steps = SETTINGS[setting]
    domains = [d for d, _, _ in spec]
    path = Path(args.out) / f"search-curves2-{setting}-s{steps}-b{args.batch}-u{args.update_every}.json"
    if path.exists():
        return json.loads(path.read_text())
    k = len(domains)
    rng = np.random.default_rng(SEARCH_SEED + k)
    cands = [np.full(k, 1.0 / k)] + [rng.dirichlet(np.ones(k)) for _ in range(7)]
    pools, val = make_data(setting, SEARCH_SEED, steps * args.batch + 1, 64, args.seq)
    runs = [train(setting, "static", {}, w, SEARCH_SEED, args, pools, val, curve_points=8) for w in cands]
    best = int(np.argmin([r["excess"].mean() for r in runs]))
    tokens = steps * args.batch * (args.seq - CTX)
    table = RunTable.from_records(
        [{"run_id": str(i), "weights": dict(zip(domains, w.tolist(), strict=True)), "tokens": tokens,
          "final_loss": dict(zip(domains, r["val_loss"].tolist(), strict=True)),
          "tokens_seen": [c[0] for c in r["curve"]],
          "val_loss": {d: [float(c[1][j]) for c in r["curve"]] for j, d in enumerate(domains)}}
         for i, (w, r) in enumerate(zip(cands, runs, strict=True))], domains=domains, fidelity=["tokens"])
    out = {"weights": cands[best].tolist(), "excess": [float(r["excess"].mean()) for r in runs],
           "reference": proposal_curves(table, cands[best], predicted=None, tokens=tokens, seed=SEARCH_SEED)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"[{setting}] search: best static {np.round(cands[best], 2).tolist()} (excess {min(out['excess']):.4f}; "
          f"uniform {out['excess'][0]:.4f})", flush=True)
    return out


def refine_hindsight(setting: str, args, evals: int, seeds=(0, 1, 2)) -> list[float]:
    """Nelder-Mead on the softmax logits of a static mixture, from ``HINDSIGHT[setting]``, minimising the mean
    ratio of its excess loss to stratified's over the tuning ``seeds``; returns the best mixture tried."""
    from scipy.optimize import minimize

    spec, steps = SETTINGS[setting]
    k = len(spec)
    data = {s: make_data(setting, s, steps * args.batch + 1, 64, args.seq) for s in seeds}

    def excess(w, s):
        return float(train(setting, "static", {}, list(w), s, args, *data[s])["excess"].mean())

    strat = {s: excess(np.full(k, 1.0 / k), s) for s in seeds}
    tried: list[tuple[float, list[float]]] = []

    def ratio(z):
        w = np.exp(z - z.max())
        w = (w / w.sum()).round(3)
        w[-1] = 1.0 - w[:-1].sum()
        r = float(np.mean([excess(w, s) / strat[s] for s in seeds]))
        tried.append((r, w.tolist()))
        return r

    minimize(ratio, np.log(np.asarray(HINDSIGHT[setting]) + 1e-3), method="Nelder-Mead",
             options={"maxfev": evals, "xatol": 0.02, "fatol": 1e-4})
    best = min(tried)
    print(f"[{setting}] HINDSIGHT {tried[0][0]:.4f} -> {best[0]:.4f} on seeds {list(seeds)} ({len(tried)} mixtures): "
          f"{[round(x, 3) for x in best[1]]}", flush=True)
    return best[1]


def parse_method(spec: str, default: str) -> tuple[str, dict, bool]:
    """``"ado@{json}+ref"`` -> ("ado", {...}, True); ``"default"`` resolves to ``default``."""
    ref = spec.endswith("+ref")
    body = spec[: -len("+ref")] if ref else spec
    name, _, js = body.partition("@")
    params = json.loads(js) if js else {}
    if name == "default":
        name = default
    return name, params, ref


def dense_tiny_step_s(n: int = 12) -> float:
    """Median seconds of one dense-tiny proxy training step (16 x 128 tokens, vocab 512), this process."""
    from mixopt.proxies import ProxyConfig, build_model

    torch.manual_seed(0)
    model = build_model(ProxyConfig.preset("dense-tiny").with_vocab(512))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 512, (16, 129))
    times = []
    for i in range(n + 2):
        t0 = time.perf_counter()
        logits = model(x[:, :-1]).logits_BTV
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed (5 = seeds not used for tuning)")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--methods", default=METHODS,
                    help="comma list; name[@{json params}][+ref]; 'static:search' = the search's mixture")
    ap.add_argument("--default", default="default",
                    help="the mixer 'default' stands for in --methods (the product's default mixer unless given)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--update-every", type=int, default=10)
    ap.add_argument("--out", default="experiments/out/online-synth")
    ap.add_argument("--refine-hindsight", type=int, metavar="EVALS", default=0,
                    help="only refine HINDSIGHT for --settings on tuning seeds 0-2 (Nelder-Mead, EVALS mixtures each)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.refine_hindsight:
        for setting in (s for s in args.settings.split(",") if s):
            refine_hindsight(setting, args, args.refine_hindsight)
        return
    from mixopt.online.base import MIXERS

    default = MIXERS.resolve(args.default)
    print(f"'default' in --methods is the {default!r} mixer", flush=True)
    methods = [m for m in re.split(r",(?![^{]*})", args.methods) if m]  # commas inside {json} stay
    settings = [s for s in args.settings.split(",") if s]
    results: dict[str, dict[str, list[dict]]] = {s: {m: [] for m in methods} for s in settings}
    t_start = time.perf_counter()
    for setting in settings:
        spec, steps = SETTINGS[setting]
        found = search(setting, args) if any(m.endswith("+ref") or m == "static:search" for m in methods) else None
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            pools, val = make_data(setting, seed, steps * args.batch + 1, 64, args.seq)
            for m in methods:
                if m == "static:search":
                    r = train(setting, "static", {}, found["weights"], seed, args, pools, val)
                elif m == "static:hindsight":
                    r = train(setting, "static", {}, HINDSIGHT[setting], seed, args, pools, val)
                else:
                    name, params, ref = parse_method(m, default)
                    w = None
                    if ref:
                        params, w = {**params, "reference": found["reference"]}, found["weights"]
                    r = train(setting, name, params, w, seed, args, pools, val)
                results[setting][m].append(r)
            print(f"[{setting}] seed {seed} done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    report(results, settings, methods, args)


def report(results, settings, methods, args) -> None:
    summary: dict[str, dict[str, float]] = {m: {} for m in methods}
    for setting in settings:
        spec, steps = SETTINGS[setting]
        doms = [d for d, _, _ in spec]
        res = results[setting]
        base = np.array([r["excess"].mean() for r in res["stratified"]]) if "stratified" in res else None
        print(f"\n[{setting}] {args.seeds} paired seeds from {args.seed_offset}, {steps} steps x {args.batch} seqs x "
              f"{args.seq} tokens, update every {args.update_every}")
        print(f"{'method':28s} {'avg excess':>10s} {'vs strat':>8s} {'diff (2se)':>18s}  "
              + " ".join(f"{d[:7]:>7s}" for d in doms) + "  mean weights")
        for m, rs in res.items():
            avg = np.array([r["excess"].mean() for r in rs])
            ratio = avg.mean() / base.mean() if base is not None else float("nan")
            diff = avg - base if base is not None else np.full_like(avg, np.nan)
            se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            summary[m][setting] = ratio
            per = np.mean([r["excess"] for r in rs], axis=0)
            wf = np.mean([r["weights"].mean(axis=0) for r in rs], axis=0)  # mean over the run (probes too)
            print(f"{m[:28]:28s} {avg.mean():10.4f} {ratio:8.3f} {diff.mean():+9.4f} ({2 * se:.4f})  "
                  + " ".join(f"{x:7.4f}" for x in per) + "  " + " ".join(f"{x:.2f}" for x in wf))
    print(f"\nexcess loss relative to stratified (ratio of means; < 1 is better), seeds {args.seed_offset}-"
          f"{args.seed_offset + args.seeds - 1}")
    print(f"{'method':28s} " + " ".join(f"{s:>9s}" for s in settings) + f" {'mean':>9s} {'worst':>9s}")
    for m in methods:
        vals = [summary[m][s] for s in settings]
        print(f"{m[:28]:28s} " + " ".join(f"{v:9.3f}" for v in vals) + f" {np.mean(vals):9.3f} {max(vals):9.3f}")
    step_s = dense_tiny_step_s()
    print(f"\noverhead per training step (OnlineMixing.observe + step, update every {args.update_every}); "
          f"dense-tiny proxy step (16 x 128 tokens) measured now: {1e3 * step_s:.1f} ms")
    for m in methods:
        rs = [r for s in settings for r in results[s][m]]
        us = 1e6 * sum(r["mix_s"] for r in rs) / sum(r["steps"] for r in rs)
        print(f"{m[:28]:28s} {us:8.1f} us/step = {100 * us * 1e-6 / step_s:.3f}% of a dense-tiny step")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dump = {"args": vars(args), "ratio_vs_stratified": summary, "dense_tiny_step_s": step_s,
            "excess": {s: {m: [r["excess"].tolist() for r in rs] for m, rs in results[s].items()} for s in settings}}
    name = f"bench-seeds{args.seed_offset}-{args.seed_offset + args.seeds - 1}.json"
    (out / name).write_text(json.dumps(dump, indent=1))
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
