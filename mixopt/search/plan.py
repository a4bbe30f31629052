"""``mixopt plan``: what a job would do, without doing it (no tokenizing of whole domains, no training).

Per domain it reports documents and tokens: exact from the manifest when the domain is prepared and up to
date, else an estimate from the source's bytes (tokens per byte measured on a few documents when a
tokenizer is available, else an assumed 4 bytes per token). Then the search: proxy runs, initial design,
fidelities and their cost (parameters and FLOPs from ``mixopt.proxies.ProxyConfig``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from mixopt.config import JobConfig
from mixopt.data.shards import read_manifest
from mixopt.data.sources import iter_documents, source_fingerprint, source_stats
from mixopt.data.tokenizer import load_tokenizer
from mixopt.proxies import ProxyConfig

__all__ = ["format_plan", "plan_job"]

_ASSUMED_BYTES_PER_TOKEN = 4.0


def _tokens_per_byte(tok, name: str, cfg: JobConfig) -> float | None:
    docs = [d for d in itertools.islice(iter_documents(name, cfg.domains[name]), 64) if d]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    if not n_bytes:
        return None
    n_tok = sum(len(e.ids) + 1 for e in tok.encode_batch_fast(docs, add_special_tokens=False))
    return n_tok / n_bytes


def plan_job(cfg: JobConfig) -> dict[str, Any]:
    """A dict describing the job's data and search cost. Raises DataError on missing/empty sources."""
    data_dir = Path(cfg.data_dir)
    manifest = read_manifest(data_dir) or {}
    shards = manifest.get("shards", {})
    tok_info = manifest.get("tokenizer") or {}
    tok = None
    tok_path = cfg.tokenizer.path or (tok_info and str(data_dir / tok_info["path"]) if tok_info else None)
    if tok_path and Path(tok_path).is_file():
        tok = load_tokenizer(tok_path)
    domains = []
    for name, src in cfg.domains.items():
        stats = source_stats(name, src)
        e = shards.get(name)
        row = {"domain": name, "source": stats["where"], "bytes": stats["bytes"]}
        if e and e.get("source_hash") == source_fingerprint(name, src) and e.get("tokenizer_hash") == tok_info.get("hash"):
            row.update(documents=e["documents"], tokens=e["tokens"], train_tokens=e["train_tokens"], exact=True)
        else:
            tpb = _tokens_per_byte(tok, name, cfg) if tok is not None else None
            tpb = tpb or 1.0 / _ASSUMED_BYTES_PER_TOKEN
            est = int(stats["bytes"] * tpb) if stats["bytes"] is not None else None
            row.update(documents=stats["documents"], tokens=est,
                       train_tokens=None if est is None else max(est - cfg.data.val_tokens, 0), exact=False)
        domains.append(row)
    total_train = sum(r["train_tokens"] or 0 for r in domains)
    for r in domains:
        r["prior"] = (r["train_tokens"] or 0) / total_train if total_train else 0.0
    vocab = tok.get_vocab_size() if tok is not None else cfg.tokenizer.vocab_size
    fidelities = []
    for f in cfg.proxy.fidelity_list():
        pc = ProxyConfig.preset(f.preset).with_vocab(vocab)
        fidelities.append({"preset": f.preset, "tokens": f.tokens, "params": pc.param_counts()["total"],
                           "flops_per_run": pc.flops_per_token(cfg.proxy.seq_len) * f.tokens})
    runs = cfg.budget.runs
    flops = [f["flops_per_run"] for f in fidelities]
    cost = None
    if runs is not None and all(x is not None for x in flops):
        cost = {"min": runs * min(flops), "max": runs * max(flops)}
    return {
        "name": cfg.name,
        "workspace": str(cfg.workspace_dir),
        "prepared": bool(domains) and all(r["exact"] for r in domains),
        "tokenizer": (f"load {cfg.tokenizer.path}" if cfg.tokenizer.path else
                      f"byte-level BPE, vocab {cfg.tokenizer.vocab_size}, "
                      f"{cfg.tokenizer.sample_bytes_per_domain:,} sample bytes/domain"
                      + (" (trained)" if tok is not None else "")),
        "domains": domains,
        "train_tokens": total_train,
        "search": {"strategy": cfg.search.strategy, "n_init": cfg.search.n_init, "batch_size": cfg.search.batch_size,
                   "runs": runs, "tokens": cfg.budget.tokens, "flops": cfg.budget.flops,
                   "wall_seconds": cfg.budget.wall_seconds},
        "fidelities": fidelities,
        "cost_flops": cost,
    }


def _n(x: Any) -> str:
    return "n/a" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:.3g}"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as aligned text for the terminal."""
    lines = [f"job {plan['name']}  workspace {plan['workspace']}",
             f"data: {'prepared' if plan['prepared'] else 'not prepared (estimates marked ~)'}",
             f"tokenizer: {plan['tokenizer']}",
             f"{'domain':<14}{'documents':>11}{'tokens':>14}{'prior':>8}  source"]
    for r in plan["domains"]:
        mark = "" if r["exact"] else "~"
        lines.append(f"{r['domain']:<14}{_n(r['documents']):>11}{mark + _n(r['tokens']):>14}{r['prior']:>8.3f}"
                     f"  {r['source']}")
    s = plan["search"]
    limits = ", ".join(f"{k} {_n(s[k])}" for k in ("runs", "tokens", "flops", "wall_seconds") if s[k] is not None)
    lines.append(f"search: {s['strategy']}, {s['n_init']} initial runs, {s['batch_size']} per round; budget: {limits}")
    for f in plan["fidelities"]:
        share = f["tokens"] / plan["train_tokens"] if plan["train_tokens"] else None
        lines.append(f"fidelity {f['preset']} x {f['tokens']:,} tokens ({_n(share)} epochs of the data at the prior): "
                     f"params {_n(f['params'])}, FLOPs/run {_n(f['flops_per_run'])}")
    c = plan["cost_flops"]
    if c is None:
        lines.append("estimated cost: n/a")
    elif c["min"] == c["max"]:
        lines.append(f"estimated cost: {c['max']:.3g} FLOPs ({s['runs']} runs)")
    else:
        lines.append(f"estimated cost: {c['min']:.3g}-{c['max']:.3g} FLOPs ({s['runs']} runs, cheapest-all to target-all)")
    return "\n".join(lines)
