"""Online mixers with a real model: the dense-tiny proxy on the demo corpus, held-out loss per domain.

Every method trains ``ProxyConfig.preset("dense-tiny")`` (vocab 512) for ``--tokens`` tokens with the
proxies' own training settings (``TrainSettings``: AdamW 3e-3, 10% warmup, cosine to 10%, weight decay
0.1, grad clip 1) at seq_len 64 / batch 16, through :class:`mixopt.online.OnlineMixing` (per-sequence
training losses, an update every ``--update-every`` steps). Seeds are paired (same init and same sampler
seed per seed). Methods:

* ``stratified`` (uniform) and ``static`` (``--static`` weights; default the natural token shares);
* every mixer, started from uniform like stratified (``odm``, ``exp3``, ``aioli``, ``progress``, ``ado``);
* ``default+ref``: the default mixer started from the ``--static`` mixture with ``reference=`` per-domain
  power laws fitted to the held-out curve of one run of that mixture on seed 1000 (not a reported seed):
  a user who has a reference run of the full length;
* ``static:search`` and ``<mixer>+search`` (search-informed, what a user of the search job gets): a search
  job on the same prepared data with the quickstart's settings (``examples/quickstart.yaml``: BO, 12
  dense-tiny proxies of ``--search-tokens`` tokens, ``max_weight`` 0.6; ``--search-strategy``), cached in
  ``--out``; ``static:search`` trains its proposal, ``<mixer>+search`` runs the mixer from the proposal with
  ``reference=`` the job directory (its ``reference_curves``) and ``reference_tokens=--tokens``.

Reported: the held-out loss (nats/token, ``--eval-tokens`` fixed tokens per domain) at the end, its mean
over domains, and the paired difference against stratified with 2 standard errors (over seeds). Each run
is cached under ``--out`` (``runs/<method>-s<seed>.json``, with the mixer's defaults: a run cached under other
defaults is re-run), so the benchmark can be resumed or extended;
the tables go to ``--out`` as ``results.json`` and ``results.md``.

    python experiments/bench_online_real.py --tokens 2000000 --seeds 3
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
import torch.nn.functional as F

from mixopt.online import OnlineMixing, make_mixer, per_sequence_loss
from mixopt.online.base import mixer_defaults
from mixopt.online.power_law import fit_power_law

METHODS = "stratified,static,odm,exp3,aioli,progress,ado,default+ref,static:search,default+search"
REF_SEED = 1000


def load_data(work: Path):
    from mixopt.config import load_job_config
    from mixopt.data import build_demo_corpus, prepare_data

    if not (work / "job.yaml").exists():
        build_demo_corpus(str(work), seed=0)
    cfg = load_job_config(f"{work}/job.yaml")
    cfg.workspace, cfg.tokenizer.vocab_size = f"{work}/ws", 512
    return prepare_data(cfg, progress=False)


def train(data, name: str, params: dict, weights, seed: int, args, val, curve_points: int = 1) -> dict:
    """One run; the held-out loss per domain at ``curve_points`` log-spaced steps (the last one = final)."""
    from mixopt.data import MixtureSampler
    from mixopt.proxies import ProxyConfig, TrainSettings, build_model
    from mixopt.proxies.schedule import eval_steps, lr_factor
    from mixopt.proxies.trainer import evaluate

    s = TrainSettings(seq_len=args.seq, batch_size=args.batch)
    steps = args.tokens // (s.seq_len * s.batch_size)
    torch.manual_seed(seed)
    model = build_model(ProxyConfig.preset("dense-tiny").with_vocab(data.vocab_size))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=s.lr, betas=s.betas)
    k = len(data.domains)
    sampler = MixtureSampler(data, np.full(k, 1.0 / k), seq_len=s.seq_len, batch_size=s.batch_size, seed=seed)
    mixer = make_mixer(name, data.domains, initial_weights=weights, seed=seed, **params)
    mixing = OnlineMixing(mixer, sampler, update_every=args.update_every, total_steps=steps)
    points = set(eval_steps(steps, curve_points))
    curve, mix_s, train_s = [], 0.0, 0.0
    t_start = time.perf_counter()
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = s.lr * lr_factor(step - 1, steps, schedule=s.schedule, warmup=s.warmup,
                                       min_lr_ratio=s.min_lr_ratio)
        tokens, dom = sampler.next_batch()
        logits = model(tokens[:, :-1]).logits_BTV  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        opt.step()
        t1 = time.perf_counter()
        seq_loss, n_tok = per_sequence_loss(logits, tokens[:, 1:])
        t2 = time.perf_counter()
        mixing.observe(seq_loss, dom, n_tok)
        mixing.step(step)
        t3 = time.perf_counter()
        train_s += t1 - t0
        mix_s += t3 - t2
        if step in points:
            ev = evaluate(model, val, 64)
            curve.append([step * s.seq_len * s.batch_size, [ev[d] for d in data.domains]])
        if args.progress and step % args.progress == 0:
            print(f"    {name} seed {seed}: step {step}/{steps} loss {float(loss.detach()):.3f} "
                  f"({time.perf_counter() - t_start:.0f} s)", flush=True)
    return {"final": curve[-1][1], "curve": curve, "history": mixing.history[:: max(1, len(mixing.history) // 50)],
            "final_weights": mixing.history[-1][1], "steps": steps, "train_s": train_s, "mix_s": mix_s,
            "wall_s": time.perf_counter() - t_start}


def search_job(args) -> Path:
    """The quickstart's search on this benchmark's prepared data (cached: a finished job is not re-run)."""
    from mixopt.config import load_job_config
    from mixopt.search import run_search

    cfg = load_job_config(f"{args.work}/job.yaml")
    cfg.workspace, cfg.tokenizer.vocab_size = f"{args.work}/ws", 512  # the data this benchmark trains on
    cfg.name = f"search-{args.search_strategy}-t{args.search_tokens}{_floor_tag(args)}"
    cfg.proxy = cfg.proxy.model_copy(update={"preset": "dense-tiny", "tokens": args.search_tokens,
                                             "seq_len": args.seq, "batch_size": args.batch, "eval_points": 3,
                                             "eval_tokens": 2048})
    cfg.search = cfg.search.model_copy(update={"strategy": args.search_strategy, "n_init": 6, "batch_size": 2,
                                               "cpus_per_proxy": 1})
    cfg.budget = cfg.budget.model_copy(update={"runs": 12, "wall_seconds": None})
    cfg.constraints = cfg.constraints.model_copy(update={"max_weight": 0.6})
    if args.scored_floor is not None:
        cfg.constraints.scored_floor = args.scored_floor
    cfg.tracking = cfg.tracking.model_copy(update={"uri": f"sqlite:///{Path(args.work).resolve()}/mlflow.db"})
    cfg.ray = cfg.ray.model_copy(update={"num_cpus": 2})
    res = run_search(cfg, progress=False)
    p = res.proposal
    print(f"search {cfg.name}: proposal {json.dumps({d: round(w, 3) for d, w in p.weights.items()})}; "
          f"reference curves for {sorted(p.reference_curves or {})}", flush=True)
    return cfg.job_dir


def _floor_tag(args) -> str:
    """``-floor<x>`` when ``--scored-floor`` overrides the product's default (names the job and its runs)."""
    return "" if args.scored_floor is None else f"-floor{args.scored_floor:g}"


def run_path(folder: Path, method: str, seed: int, args) -> Path:
    """The cache file of one run (a search-informed method's name includes its search)."""
    safe = method.replace("/", "_").replace(" ", "").replace(":", "_")
    if method.endswith("+search") or method == "static:search":
        safe += f"-{args.search_strategy}-t{args.search_tokens}{_floor_tag(args)}"
    return folder / f"{safe}-s{seed}.json"


def cached(path: Path, fn, defaults: dict | None = None):
    """The run cached at ``path``, else ``fn()`` (cached). A run cached under other mixer defaults
    (``defaults``: :func:`mixopt.online.base.mixer_defaults`) is stale and re-run."""
    if path.exists():
        run = json.loads(path.read_text())
        if defaults is None or run.get("mixer_defaults") == defaults:
            return run
        print(f"{path.name}: cached under other mixer defaults, re-running", flush=True)
    out = fn()
    if defaults is not None:
        out["mixer_defaults"] = defaults
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--update-every", type=int, default=20)
    ap.add_argument("--eval-tokens", type=int, default=16384, help="held-out tokens per domain")
    ap.add_argument("--methods", default=METHODS,
                    help="comma list; name[@{json params}]; default+ref, static:search, <mixer>+search")
    ap.add_argument("--default", default="default", help="the mixer behind 'default' / 'default+ref'")
    ap.add_argument("--static", default=None, help='JSON {domain: weight}; default: natural token shares')
    ap.add_argument("--work", default="/tmp/mixopt_bench_online_real", help="demo corpus + tokenizer cache")
    ap.add_argument("--search-tokens", type=int, default=65_536, help="tokens per proxy of the search")
    ap.add_argument("--search-strategy", default="bo")
    ap.add_argument("--scored-floor", type=float, default=None,
                    help="the search's constraints.scored_floor (default: the product's); tags the job and its runs")
    ap.add_argument("--out", default="experiments/out/online-real")
    ap.add_argument("--progress", type=int, default=500, help="print every N steps (0 = off)")
    ap.add_argument("--report-only", action="store_true", help="tabulate the cached runs only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    tag = f"t{args.tokens}-b{args.batch}-s{args.seq}-u{args.update_every}"
    data = load_data(Path(args.work))
    val = data.val_sequences(args.seq, args.eval_tokens)
    static = json.loads(args.static) if args.static else {d: float(w) for d, w in zip(data.domains, data.prior(), strict=True)}
    methods = [m for m in re.split(r",(?![^{]*})", args.methods) if m]  # commas inside {json} stay
    t_all = time.perf_counter()
    print(f"domains {data.domains}; static {json.dumps({d: round(w, 3) for d, w in static.items()})}; "
          f"{args.tokens // (args.seq * args.batch)} steps of {args.batch} x {args.seq}", flush=True)
    ref = None
    if any(m.endswith("+ref") for m in methods):
        run = cached(out / "runs" / tag / f"reference-s{REF_SEED}.json",
                     lambda: train(data, "static", {}, static, REF_SEED, args, val, curve_points=10))
        n = np.array([c[0] for c in run["curve"]])
        law = fit_power_law(n, np.array([c[1] for c in run["curve"]])).as_tokens()
        ref = {d: (float(law["E"][i]), float(law["B"][i]), float(law["beta"][i])) for i, d in enumerate(data.domains)}
    job = None
    if any(m.endswith("+search") or m == "static:search" for m in methods):
        job = search_job(args)
        searched = json.loads((job / "proposal.json").read_text())["weights"]
    results: dict[str, list[dict]] = {m: [] for m in methods}
    if not args.report_only:
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            for m in methods:
                name, _, js = m.removesuffix("+ref").removesuffix("+search").partition("@")
                params = json.loads(js) if js else {}
                w = None
                if m == "static":
                    w = static
                elif m == "static:search":
                    name, w = "static", searched
                elif m.endswith("+ref"):
                    params, w = {**params, "reference": ref}, static
                elif m.endswith("+search"):
                    params = {"reference": str(job), "reference_tokens": args.tokens, **params}
                    w = searched
                if name == "default":
                    name = args.default
                t0 = time.perf_counter()
                r = cached(run_path(out / "runs" / tag, m, seed, args),
                           lambda name=name, params=params, w=w, seed=seed: train(data, name, params, w, seed, args, val),
                           mixer_defaults(name))
                print(f"[{time.perf_counter() - t_all:6.0f} s] seed {seed} {m}: mean {np.mean(r['final']):.4f}  "
                      + " ".join(f"{d}={x:.3f}" for d, x in zip(data.domains, r["final"], strict=True))
                      + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    for m in methods:
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            p = run_path(out / "runs" / tag, m, seed, args)
            if p.exists():
                results[m].append(json.loads(p.read_text()))
    report(results, data.domains, args, out, static, ref)


def report(results, domains, args, out: Path, static, ref) -> None:
    base = results.get("stratified") or []
    n = min([len(rs) for rs in results.values() if rs] or [0])
    lines = [f"dense-tiny on the demo corpus, {args.tokens:,} tokens ({args.batch} x {args.seq}), update every "
             f"{args.update_every} steps, seeds {args.seed_offset}..{args.seed_offset + n - 1} (paired); held-out "
             f"loss nats/token; diff = paired difference vs stratified (2 s.e.)", "",
             "| method | mean | diff vs stratified | " + " | ".join(domains) + " | mean weights |",
             "|---" * (len(domains) + 4) + "|"]
    table = {}
    for m, rs in results.items():
        if not rs or len(base) < n:
            continue
        rs = rs[:n]
        fin = np.array([r["final"] for r in rs])  # (seeds, k)
        b = np.array([r["final"] for r in base[:n]])
        d_mean = fin.mean(1) - b.mean(1)
        d_dom = fin - b
        se = lambda x: x.std(axis=0, ddof=1) / math.sqrt(len(x)) if len(x) > 1 else np.full(np.shape(x)[1:], np.nan)  # noqa: E731
        cells = [f"{fin[:, i].mean():.3f} ({d_dom[:, i].mean():+.3f}±{2 * se(d_dom)[i]:.3f})" for i in range(len(domains))]
        wf = np.mean([np.mean([w for _, w in r["history"]], axis=0) for r in rs], axis=0)  # mean over the run
        lines.append(f"| {m} | {fin.mean():.4f} | {d_mean.mean():+.4f} ± {2 * se(d_mean):.4f} | " + " | ".join(cells)
                     + " | " + " ".join(f"{x:.2f}" for x in wf) + " |")
        table[m] = {"mean": float(fin.mean()), "diff_mean": float(d_mean.mean()), "diff_2se": float(2 * se(d_mean)),
                    "per_domain": fin.mean(0).tolist(), "diff_domain": d_dom.mean(0).tolist(),
                    "diff_domain_2se": (2 * se(d_dom)).tolist(), "mean_weights": wf.tolist(),
                    "worse_beyond_2se": [d for i, d in enumerate(domains) if d_dom[:, i].mean() > 2 * se(d_dom)[i]]}
    all_runs = [r for rs in results.values() for r in rs[:n]]
    if all_runs:
        step_ms = 1e3 * np.mean([r["train_s"] / r["steps"] for r in all_runs])
        lines += ["", f"dense-tiny step (16 x 64, this run): {step_ms:.1f} ms; mixer overhead per step "
                      "(OnlineMixing.observe + step):"]
        for m, rs in results.items():
            if rs:
                us = 1e6 * np.mean([r["mix_s"] / r["steps"] for r in rs[:n]])
                ratio = 100 * np.mean([r["mix_s"] / r["train_s"] for r in rs[:n]])
                lines.append(f"- {m}: {us:.0f} us/step = {ratio:.3f}% of the training step")
    text = "\n".join(lines)
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "domains": domains, "static": static,
                                                  "reference": ref, "table": table}, indent=1))
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")


if __name__ == "__main__":
    main()
