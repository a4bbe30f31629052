#!/usr/bin/env python
"""Transfer experiment (issue 8): do mixtures proposed from CPU-tiny proxies beat the baselines at a
larger target scale?

One command runs everything (resumable: finished searches and training runs are reused)::

    python experiments/transfer/run.py            # full run (config.yaml), ~20-25 min on 2 shared cores
    python experiments/transfer/run.py --quick    # smoke version (quick.yaml), ~9 min on 2 loaded cores

Steps: build the demo corpus and prepare it once (one workspace); run the search for each objective x
strategy at equal proxy budget (tokens); collect the mixtures (each strategy's proposal, uniform, natural,
the best mixture any proxy observed, and the online mixer from a uniform start); train every mixture at
the proxy scale and at the target scale with the same seeds; write tables, a plot and summary statistics
to ``experiments/transfer/results/`` and log everything to MLflow (sqlite under the workspace).
See ``README.md`` in this folder for the method.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

from transfer_config import ExperimentConfig, load_experiment_config  # noqa: E402

from mixopt.errors import ConfigError, MixoptError  # noqa: E402
from mixopt.online.base import MIXERS, mixer_defaults  # noqa: E402

NO_GPU_NOTE = "GPU-scale repeat not run: no accelerator lent in this task."


# --- data and model sizes -----------------------------------------------------------------------------
def prepare(cfg: ExperimentConfig):
    """Build the demo corpus (once) and prepare its token shards in the experiment's workspace."""
    from mixopt.config import load_job_config
    from mixopt.data import build_demo_corpus, prepare_data

    ws = Path(cfg.workspace)
    corpus = ws / "corpus"
    if not (corpus / "job.yaml").exists():
        build_demo_corpus(corpus, seed=cfg.corpus_seed)
    base = load_job_config(corpus / "job.yaml")
    base.workspace = str(ws)
    base.tokenizer.vocab_size = cfg.vocab_size
    return base, prepare_data(base, progress=False)


def model_config(spec, vocab_size: int):
    """``ProxyConfig`` of a scale: the preset (with the tokenizer's vocabulary) plus any overrides."""
    from mixopt.proxies import ProxyConfig

    c = ProxyConfig.preset(spec.preset).with_vocab(vocab_size)
    if spec.overrides:
        try:
            c = c.replace(name=spec.name, **spec.overrides)
        except TypeError as e:
            raise ConfigError(f"model overrides: {e}") from None
    return c


def train_settings(cfg: ExperimentConfig, spec) -> dict:
    t = cfg.train
    return {"seq_len": t.seq_len, "batch_size": t.batch_size, "lr": spec.lr or t.lr, "schedule": t.schedule,
            "eval_points": t.eval_points, "eval_tokens": t.eval_tokens}


# --- searches -------------------------------------------------------------------------------------------
def search_job_config(cfg: ExperimentConfig, base, objective: str, weights: dict[str, float], strategy: str):
    """The ``JobConfig`` of one search: same workspace/data/proxy/budget for every strategy."""
    from mixopt.config import BudgetSettings, FidelitySettings, ProxySettings, RaySettings, SearchSettings

    p, s = cfg.proxy, cfg.search
    preset = p.name or p.preset
    fids = None
    if strategy == "bo" and s.bo_low_fidelity_fraction:
        fids = [FidelitySettings(preset=preset, tokens=max(1, int(p.tokens * s.bo_low_fidelity_fraction))),
                FidelitySettings(preset=preset, tokens=p.tokens)]
    t = train_settings(cfg, p)
    job = base.model_copy(deep=True)
    job.name = f"{cfg.name}-{objective}-{strategy}" + _search_tag(cfg, "-")
    if s.seed is not None:
        job.seed = s.seed
    if s.scored_floor is not None:
        job.constraints.scored_floor = s.scored_floor
    if s.scored_floor_scope is not None:
        job.constraints.scored_floor_scope = s.scored_floor_scope
    job.proxy = ProxySettings(preset=preset, tokens=p.tokens, fidelities=fids, **t)
    job.search = SearchSettings(strategy=strategy, n_init=s.n_init, batch_size=s.batch_size, objective=weights,
                                parallel=s.parallel, candidates=s.candidates, confirm=s.confirm,
                                surrogate=s.surrogates.get(f"{objective}/{strategy}", s.surrogates.get(strategy)))
    job.budget = BudgetSettings(runs=None, tokens=s.budget_tokens)
    job.tracking.uri = tracking_uri(cfg)
    job.tracking.experiment = cfg.name
    job.ray = RaySettings(num_cpus=s.parallel)
    return job


def _search_tag(cfg: ExperimentConfig, sep: str) -> str:
    """What tells this experiment's search jobs apart from other seeds and floors (``-s1-floor0-scopeproposal``)."""
    s = cfg.search
    return (("" if s.seed is None else f"{sep}s{s.seed}")
            + ("" if s.scored_floor is None else f"{sep}floor{s.scored_floor:g}")
            + ("" if s.scored_floor_scope is None else f"{sep}scope{s.scored_floor_scope}"))


def _proposal_weights(result, job_dir: Path) -> dict[str, float]:
    prop = getattr(result, "proposal", None)
    w = getattr(prop, "weights", None) if prop is not None else None
    if w is None and isinstance(prop, dict):
        w = prop.get("weights")
    if w is None and (job_dir / "proposal.json").exists():
        w = json.loads((job_dir / "proposal.json").read_text()).get("weights")
    if not w:
        raise MixoptError(f"search {job_dir.name} returned no proposal")
    return {d: float(x) for d, x in w.items()}


def run_searches(cfg: ExperimentConfig, base, objectives: dict[str, dict[str, float]]) -> dict:
    """Run (or reuse) one search per objective x strategy; returns ``{(obj, strategy): summary dict}``."""
    from mixopt.search import run_search
    from mixopt.search.state import read_runs

    out = {}
    cache = Path(cfg.workspace) / "searches" / cfg.name
    cache.mkdir(parents=True, exist_ok=True)
    for obj, ow in objectives.items():
        for strategy in cfg.search.strategies:
            confirm_tag = "" if not cfg.search.confirm else f"__confirm{cfg.search.confirm}"
            path = cache / f"{obj}__{strategy}{_search_tag(cfg, '__')}{confirm_tag}.json"
            job = search_job_config(cfg, base, obj, ow, strategy)
            floors = {"scored_floors": job.scored_floors(), "scope": job.scored_floor_scope()}
            if path.exists():
                cached = json.loads(path.read_text())
                if cached.get("floors", floors) != floors:  # searches cached before this check carry none
                    raise ConfigError(f"search {obj}/{strategy} in {path} ran with floors {cached['floors']}, the "
                                      f"product's are now {floors}: use another workspace, or --scored-floor / "
                                      "--floor-scope to tag the jobs")
                out[(obj, strategy)] = cached
                print(f"search {obj}/{strategy}: reused ({path})", flush=True)
                continue
            t0 = time.time()
            print(f"search {obj}/{strategy}: budget {cfg.search.budget_tokens:,} proxy tokens ...", flush=True)
            result = run_search(job, progress=False)
            runs = list(getattr(result, "runs", None) or read_runs(job.job_dir / "runs.jsonl"))
            confirms = [r for r in runs if r.source == "confirm"]  # they check the proposal, outside the budget
            runs = [r for r in runs if r.source != "confirm"]
            top = len(job.proxy.fidelity_list()) - 1
            prop = result.proposal  # strategy.recommend: exactly what a user of `mixopt search` gets
            summary = {
                "objective": obj, "strategy": strategy, "job_dir": str(job.job_dir), "floors": floors,
                "proposal": _proposal_weights(result, job.job_dir),
                "predicted": prop.predicted if prop else None,
                "surrogate": (prop.surrogate or prop.rule) if prop else None,
                "rule": prop.rule if prop else None,
                "confirmation": None if not confirms else {
                    "run_id": confirms[-1].run_id, "objective": confirms[-1].objective,
                    "switched_to": prop.run_id if prop and "unconfirmed" in prop.context else None,
                    "unconfirmed": (prop.context.get("unconfirmed") or {}).get("weights") if prop else None},
                "wall_s": time.time() - t0,
                "spend": {"runs": len(runs), "tokens": int(sum(r.tokens for r in runs)),
                          "flops": float(sum(r.flops or 0 for r in runs)),
                          "runs_at_target_fidelity": sum(r.fidelity == top for r in runs),
                          "failed": sum(not r.ok for r in runs)},
                "runs": [{"weights": r.weights, "final_loss": r.final_loss, "status": r.status,
                          "at_target_fidelity": r.fidelity == top, "tokens": r.tokens} for r in runs],
            }
            path.write_text(json.dumps(summary))
            print(f"  done in {summary['wall_s']:.0f}s: {summary['spend']}", flush=True)
            out[(obj, strategy)] = summary
    for summary in out.values():  # the job's own elapsed time over all its sessions (resumes included)
        state = Path(summary["job_dir"]) / "state.json"
        if state.exists():
            summary["job_elapsed_s"] = json.loads(state.read_text()).get("elapsed_s")
    return out


# --- mixtures and training jobs ----------------------------------------------------------------------------
def collect_mixtures(domains, prior, objectives, searches, online: bool) -> dict[str, dict]:
    """``{name: {"kind", "weights", "objectives", "online"}}`` for every mixture to train at both scales."""
    from transfer_analysis import objective_value

    k = len(domains)
    every = list(objectives)
    mix = {
        "uniform": {"kind": "baseline", "weights": {d: 1.0 / k for d in domains}, "objectives": every},
        "natural": {"kind": "baseline", "weights": {d: float(p) for d, p in zip(domains, prior, strict=True)},
                    "objectives": every},
    }
    if online:
        mix["online"] = {"kind": "online", "weights": dict(mix["uniform"]["weights"]), "objectives": every,
                         "online": True}
    for obj, ow in objectives.items():
        pooled = []
        for (o, strategy), s in searches.items():
            if o != obj:
                continue
            mix[f"{strategy}:{obj}"] = {"kind": "strategy", "weights": s["proposal"], "objectives": [obj]}
            pooled += [r for r in s["runs"] if r["status"] == "ok" and r["at_target_fidelity"]]
        if pooled:
            best = min(pooled, key=lambda r: objective_value(r["final_loss"], ow))
            mix[f"best-observed:{obj}"] = {"kind": "best-observed", "weights": best["weights"], "objectives": [obj]}
    return mix


def _key(payload: dict) -> str:
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def make_jobs(cfg, data_dir, mixtures, scales: dict[str, tuple]) -> tuple[list[dict], dict]:
    """Unique training jobs (a mixture shared by two names is trained once) and ``{job key: [names]}``."""
    jobs, names = {}, {}
    for name, m in mixtures.items():
        total = sum(float(x) for x in m["weights"].values())
        w = {d: float(x) / total for d, x in m["weights"].items()}
        for scale, (model, tokens, settings) in scales.items():
            steps = tokens // (settings["batch_size"] * settings["seq_len"])
            # the resolved name ("default" -> its mixer), so a new default is not served from the cache
            online = {"mixer": MIXERS.resolve(cfg.online.mixer), "update_every": max(1, steps // (cfg.online.updates + 1)),
                      "params": cfg.online.params} if m.get("online") else None
            for seed in cfg.seeds:
                payload = {"w": {d: round(x, 6) for d, x in w.items()}, "online": online, "model": model, "tokens": tokens, "settings": settings,
                           "seed": seed}
                if online:  # and the mixer's own defaults, so a changed default is not served from the cache
                    payload["mixer_defaults"] = mixer_defaults(online["mixer"])
                key = f"{scale}-{_key(payload)}-s{seed}"
                names.setdefault(key, []).append(name)
                jobs[key] = {"key": key, "scale": scale, "data_dir": str(data_dir), "model": model,
                             "tokens": tokens, "seed": seed, "weights": w, "settings": settings, "online": online,
                             "out": str(Path(cfg.workspace) / "train" / scale / f"{key}.json")}
    return list(jobs.values()), names


def tracking_uri(cfg: ExperimentConfig) -> str:
    return f"sqlite:///{Path(cfg.workspace).resolve() / 'mlflow.db'}"


# --- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, help="experiment YAML (default: config.yaml, or quick.yaml with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke version (quick.yaml, ~9 min on 2 loaded cores)")
    ap.add_argument("--strategies", help="comma-separated subset of the config's strategies ('' = no search)")
    ap.add_argument("--objectives", help="comma-separated subset of the config's objectives")
    ap.add_argument("--search-seed", type=int, help="the search jobs' seed (default: config; other seeds: other jobs)")
    ap.add_argument("--scored-floor", type=float,
                    help="the search jobs' constraints.scored_floor (default: config, else the product's); "
                         "tags their names and caches")
    ap.add_argument("--floor-scope", choices=["search", "proposal"],
                    help="the search jobs' constraints.scored_floor_scope (default: config, else the product's); "
                         "tags their names and caches")
    ap.add_argument("--confirm", choices=["off", "check", "switch"],
                    help="the search jobs' search.confirm (default: config, else off): 'check' trains the proposal "
                         "at the proxy scale at the end, 'switch' also proposes the best run when that does worse; "
                         "reuses a finished search of the same tags and trains only its confirmation run")
    ap.add_argument("--workers", type=int, help="parallel training processes (default: config)")
    ap.add_argument("--results", type=Path, help="results folder (default: results/ or results/quick/)")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except MixoptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    t_start = time.time()
    cfg_path = args.config or HERE / ("quick.yaml" if args.quick else "config.yaml")
    cfg = load_experiment_config(cfg_path)
    if args.strategies is not None:
        chosen = [s for s in args.strategies.split(",") if s]
        unknown = sorted(set(chosen) - set(cfg.search.strategies))
        if unknown:
            raise ConfigError(f"--strategies: {unknown} not in the config's {cfg.search.strategies}")
        cfg.search.strategies = chosen
    if args.objectives is not None:
        chosen = [o for o in args.objectives.split(",") if o]
        unknown = sorted(set(chosen) - set(cfg.objectives))
        if unknown or not chosen:
            raise ConfigError(f"--objectives: {unknown or 'none'} not in the config's {sorted(cfg.objectives)}")
        cfg.objectives = {o: cfg.objectives[o] for o in chosen}
    if args.workers:
        cfg.workers = args.workers
    if args.search_seed is not None:
        if args.search_seed < 0:
            raise ConfigError("--search-seed must be >= 0")
        cfg.search.seed = args.search_seed
    if args.scored_floor is not None:
        if not 0 <= args.scored_floor < 1:
            raise ConfigError("--scored-floor must be in [0, 1)")
        cfg.search.scored_floor = args.scored_floor
    if args.floor_scope is not None:
        cfg.search.scored_floor_scope = args.floor_scope
    if args.confirm is not None:
        cfg.search.confirm = {"off": False, "check": True, "switch": "switch"}[args.confirm]
    results_dir = args.results or HERE / "results" / ("quick" if args.quick else "")
    print(f"transfer experiment {cfg.name}: config {cfg_path}, workspace {cfg.workspace}", flush=True)

    base, data = prepare(cfg)
    domains = list(data.domains)
    prior = data.prior()
    objectives = {name: spec.weights(domains) for name, spec in cfg.objectives.items()}
    proxy_m, target_m = model_config(cfg.proxy, data.vocab_size), model_config(cfg.target, data.vocab_size)
    import transfer_presets

    extra_presets = {m.name: m.to_dict() for spec, m in ((cfg.proxy, proxy_m), (cfg.target, target_m)) if spec.overrides}
    transfer_presets.register(extra_presets)
    pp, tp = proxy_m.param_counts()["total"], target_m.param_counts()["total"]
    sizes = {"proxy_model": proxy_m.name, "target_model": target_m.name, "proxy_params": pp, "target_params": tp,
             "param_ratio": tp / pp, "proxy_tokens": cfg.proxy.tokens, "target_tokens": cfg.target.tokens,
             "token_ratio": cfg.target.tokens / cfg.proxy.tokens,
             "proxy_flops": proxy_m.flops_per_token(cfg.train.seq_len) * cfg.proxy.tokens,
             "target_flops": target_m.flops_per_token(cfg.train.seq_len) * cfg.target.tokens}
    print(f"domains {domains}; prior " + ", ".join(f"{d} {p:.3f}" for d, p in zip(domains, prior, strict=True)),
          flush=True)
    print(f"proxy {proxy_m.name} {pp:,} params x {cfg.proxy.tokens:,} tokens; target {target_m.name} {tp:,} params "
          f"x {cfg.target.tokens:,} tokens (ratios {sizes['param_ratio']:.1f}x params, "
          f"{sizes['token_ratio']:.1f}x tokens)", flush=True)
    if sizes["param_ratio"] < cfg.min_param_ratio or sizes["token_ratio"] < cfg.min_token_ratio:
        raise ConfigError(f"target must have >= {cfg.min_param_ratio}x the proxy's parameters and "
                          f">= {cfg.min_token_ratio}x its tokens (got {sizes['param_ratio']:.1f}x, "
                          f"{sizes['token_ratio']:.1f}x)")

    from transfer_tracking import TransferTracker

    tracker = TransferTracker(tracking_uri(cfg), cfg.name)

    # 1. searches (one embedded Ray runtime shared by every search)
    t0 = time.time()
    searches = {}
    if cfg.search.strategies:
        import ray

        pythonpath = os.pathsep.join([str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": pythonpath,
               transfer_presets.ENV_VAR: json.dumps(extra_presets)}
        ray.init(num_cpus=cfg.search.parallel, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, object_store_memory=100 * 1024**2,
                 runtime_env={"env_vars": env, "worker_process_setup_hook": "transfer_presets.register_from_env"})
        try:
            searches = run_searches(cfg, base, objectives)
        finally:
            ray.shutdown()
    search_wall = time.time() - t0

    # 2. mixtures x scales x seeds
    mixtures = collect_mixtures(domains, prior, objectives, searches, online=bool(cfg.online.mixer))
    scales = {"proxy": (proxy_m.to_dict(), cfg.proxy.tokens, train_settings(cfg, cfg.proxy)),
              "target": (target_m.to_dict(), cfg.target.tokens, train_settings(cfg, cfg.target))}
    jobs, names = make_jobs(cfg, base.data_dir, mixtures, scales)
    print(f"{len(mixtures)} mixtures -> {len(jobs)} training runs ({cfg.workers} workers)", flush=True)

    def on_done(job, rec, fresh):
        try:
            for name in names[job["key"]]:
                tracker.log_train(job, rec, name, mixtures[name]["kind"], job["scale"], objectives)
        except Exception as e:  # noqa: BLE001 - the record is on disk; the next run back-fills MLflow
            print(f"  warning: MLflow logging of {job['key']} failed ({type(e).__name__}: {e}); "
                  "it is logged by the next run", flush=True)

    t0 = time.time()
    from transfer_train import run_jobs

    recs = run_jobs(jobs, cfg.workers, on_done=on_done)
    train_wall = time.time() - t0
    records = []
    for job, rec in zip(jobs, recs, strict=True):
        for name in names[job["key"]]:
            records.append({"mixture": name, "scale": job["scale"], "seed": job["seed"],
                            "final_loss": rec.get("final_loss") or {}, "status": rec.get("status"),
                            "wall_time": rec.get("wall_time"), "tokens_per_s": rec.get("tokens_per_s"),
                            "extra": rec.get("extra") or {}})

    if args.strategies is None and args.objectives is None:  # a complete run: drop stale MLflow runs
        pruned = tracker.prune({j["key"] for j in jobs})
        if pruned:
            print(f"deleted {pruned} stale training run(s) from MLflow (settings changed since)", flush=True)

    # 3. statistics, table, plot, MLflow summary
    from transfer_analysis import per_domain, summarise, write_outputs

    summary = summarise(records, mixtures, objectives)
    tps = {sc: [r["tokens_per_s"] for r in records if r["scale"] == sc and r.get("tokens_per_s")] for sc in scales}
    meta = {
        "command": "python experiments/transfer/run.py" + (" --quick" if args.quick else "")
        + (f" --config {args.config}" if args.config else "")
        + (f" --strategies '{args.strategies}'" if args.strategies is not None else "")
        + (f" --objectives {args.objectives}" if args.objectives is not None else "")
        + (f" --search-seed {args.search_seed}" if args.search_seed is not None else "")
        + (f" --scored-floor {args.scored_floor:g}" if args.scored_floor is not None else "")
        + (f" --floor-scope {args.floor_scope}" if args.floor_scope is not None else "")
        + (f" --confirm {args.confirm}" if args.confirm is not None else ""),
        "config": cfg.model_dump(mode="json"), "domains": domains, "prior": prior.tolist(),
        "objectives": objectives, "sizes": sizes, "mixtures": mixtures,
        "searches": {f"{o}/{s}": {k: v for k, v in d.items() if k != "runs"} for (o, s), d in searches.items()},
        "wall_s": {"search": search_wall, "train": train_wall, "total": time.time() - t_start},
        "median_tokens_per_s": {sc: (round(sorted(v)[len(v) // 2]) if v else None) for sc, v in tps.items()},
        "train_compute_s": {sc: round(sum(r.get("wall_time") or 0 for j, r in zip(jobs, recs, strict=True)
                                          if j["scale"] == sc)) for sc in scales},
        "n_train_runs": len(jobs),
        "device": "cpu", "gpu_note": NO_GPU_NOTE,
        "finished_at_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    (results_dir / "records.json").write_text(json.dumps(records, default=str) + "\n")
    md = write_outputs(summary, results_dir, header=_header(meta), domain_table=per_domain(records, mixtures))
    metrics = {}
    for obj, s in summary.items():
        metrics[f"spearman/{obj}"] = s["spearman"]
        for _, r in s["table"].iterrows():
            metrics[f"target/{obj}/{r['mixture'].replace(':', '_')}"] = r["target_mean"]
    tracker.log_summary({"command": meta["command"]} | {f"sizes.{k}": v for k, v in sizes.items()}, metrics,
                        [md, results_dir / "transfer.png", results_dir / "summary.json", results_dir / "meta.json"])
    print(md.read_text())
    print(f"results in {results_dir}; MLflow: {tracking_uri(cfg)} (experiment {cfg.name!r}); "
          f"total {time.time() - t_start:.0f}s", flush=True)
    return 0


def _header(meta: dict) -> str:
    s = meta["sizes"]
    lines = [
        f"## Transfer experiment — {meta['finished_at_utc']} UTC",
        "",
        f"Command: `{meta['command']}` (device: CPU; {meta['gpu_note']})",
        "",
        f"- proxy scale: `{s['proxy_model']}` {s['proxy_params']:,} params x {s['proxy_tokens']:,} tokens; "
        f"target scale: `{s['target_model']}` {s['target_params']:,} params x {s['target_tokens']:,} tokens "
        f"(**{s['param_ratio']:.1f}x params, {s['token_ratio']:.1f}x tokens**, "
        f"{s['target_flops'] / s['proxy_flops']:.0f}x FLOPs per run)",
        f"- seeds {meta['config']['seeds']}; domains {meta['domains']}; natural mixture "
        + ", ".join(f"{d} {p:.3f}" for d, p in zip(meta['domains'], meta['prior'], strict=True)),
        "- objectives (lower is better, per-domain validation loss in nats/token): "
        + "; ".join(f"`{o}` = mean over {sorted(w)}" for o, w in meta["objectives"].items()),
    ]
    for key, d in meta["searches"].items():
        sp = d["spend"]
        lines.append(f"- search `{key}`: {sp['runs']} proxy runs ({sp['runs_at_target_fidelity']} at full fidelity, "
                     f"{sp['failed']} failed), {sp['tokens']:,} tokens, {sp['flops']:.3g} FLOPs, search loop "
                     f"{d.get('job_elapsed_s') or 0:.0f}s + proposal; proposal by `{d.get('surrogate')}`")
    w = meta["wall_s"]
    lines.append(f"- this invocation's wall time: search {w['search']:.0f}s, training {w['train']:.0f}s, total "
                 f"{w['total']:.0f}s (finished searches and training runs are reused from the workspace); "
                 f"{meta['n_train_runs']} distinct training runs, summed run time {meta['train_compute_s']} s, "
                 f"median tokens/s {meta['median_tokens_per_s']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
