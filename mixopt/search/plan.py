"""``mixopt plan``: what a job would do, without doing it (no tokenizing of whole domains, no training).

Per domain it reports documents and tokens: exact from the manifest when the domain is prepared and up to
date, else an estimate: a sample spread over the source (:func:`mixopt.data.sources.sample_source`,
64 kB in 16 windows) is tokenised and its tokens per byte *of the file* (JSON syntax and escaping
included) scale the source's size on disk. The tokenizer is the job's own when it exists (given, or
trained by an earlier prepare of the same data), else a BPE of the configured vocabulary trained on half
of the samples in about a second -- close to the real one (within ~5% on the demo corpus), where an
assumed 4 bytes per token was off by up to 3.5x. Then the search: proxy runs, initial design,
fidelities and their cost (parameters and FLOPs from ``mixopt.proxies.ProxyConfig``).
:mod:`mixopt.search.preflight` checks the job against these numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixopt.config import JobConfig
from mixopt.data.shards import read_manifest
from mixopt.data.sources import _where, sample_source, source_fingerprint, source_stats
from mixopt.data.tokenizer import load_tokenizer, train_tokenizer
from mixopt.proxies import ProxyConfig

__all__ = ["estimate_tokens", "format_plan", "plan_job"]

_SAMPLE_BYTES = 64_000  # per domain, for token estimates


def estimate_tokens(cfg: JobConfig, names: list[str], tok=None) -> dict[str, int]:
    """Estimated tokens (EOS included) of each domain in ``names``, from :func:`sample_source`.

    tok: the tokenizer to count with (default: a quick BPE of ``cfg.tokenizer.vocab_size`` trained on
    every other sampled document of these domains). ``max_documents`` caps the estimate."""
    samples = {n: sample_source(n, cfg.domains[n], _SAMPLE_BYTES) for n in names}
    if tok is None:
        texts = [d for docs, _ in samples.values() for d in docs[::2]]
        tok = train_tokenizer(texts or ["."], cfg.tokenizer.vocab_size)
    out = {}
    for n, (docs, share) in samples.items():
        counted = sum(len(e.ids) + 1 for e in tok.encode_batch_fast(docs, add_special_tokens=False)) if docs else 0
        est = counted / share if share > 0 else 0.0
        cap = cfg.domains[n].max_documents
        if cap is not None and docs and len(docs) / share > cap:
            est *= cap / (len(docs) / share)
        out[n] = int(round(est))
    return out


def plan_job(cfg: JobConfig, *, verify: bool = True) -> dict[str, Any]:
    """A dict describing the job's data and search cost. Raises DataError on missing/empty sources.

    verify: a manifest entry counts as exact only when its source and tokenizer hashes match (reads every
    source file) and documents are counted; ``False`` (the search's preflight) trusts this data folder's
    manifest and skips both.
    """
    data_dir = Path(cfg.data_dir)
    manifest = read_manifest(data_dir) or {}
    shards = manifest.get("shards", {})
    tok_info = manifest.get("tokenizer") or {}
    tok = None
    tok_path = cfg.tokenizer.path or (str(data_dir / tok_info["path"]) if tok_info else None)
    if tok_path and Path(tok_path).is_file():
        tok = load_tokenizer(tok_path)
    domains, todo = [], []
    for name, src in cfg.domains.items():
        stats = source_stats(name, src) if verify else {"where": _where(src), "bytes": None, "documents": None}
        e = shards.get(name)
        row = {"domain": name, "source": stats["where"], "bytes": stats["bytes"]}
        current = e and e.get("tokenizer_hash") == tok_info.get("hash") and (
            not verify or e.get("source_hash") == source_fingerprint(name, src))
        if current:
            row.update(documents=e["documents"], tokens=e["tokens"], train_tokens=e["train_tokens"], exact=True)
        else:
            row.update(documents=stats["documents"], exact=False)
            todo.append(name)
        domains.append(row)
    if todo:
        est = estimate_tokens(cfg, todo, tok)
        for row in domains:
            if not row["exact"]:
                row.update(tokens=est[row["domain"]], train_tokens=max(est[row["domain"]] - cfg.data.val_tokens, 0))
    total_train = sum(r["train_tokens"] or 0 for r in domains)
    for r in domains:
        r["prior"] = (r["train_tokens"] or 0) / total_train if total_train else 0.0
    hierarchy = cfg.hierarchy()
    if not hierarchy.flat and total_train:  # group priors where the config sets them
        for r, p in zip(domains, hierarchy.prior([r["train_tokens"] or 0 for r in domains]), strict=True):
            r["prior"] = float(p)
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
        "data_dir": str(data_dir),
        "prepared": bool(domains) and all(r["exact"] for r in domains),
        "tokenizer": (f"load {cfg.tokenizer.path}" if cfg.tokenizer.path else
                      f"byte-level BPE, vocab {cfg.tokenizer.vocab_size}, "
                      f"{cfg.tokenizer.sample_bytes_per_domain:,} sample bytes/domain"
                      + (" (trained)" if tok is not None else "")),
        "domains": domains,
        "train_tokens": total_train,
        "search": {"strategy": cfg.search.strategy, "n_init": cfg.search.n_init, "batch_size": cfg.search.batch_size,
                   "repeats": cfg.search.repeats, "runs": runs, "tokens": cfg.budget.tokens, "flops": cfg.budget.flops,
                   "wall_seconds": cfg.budget.wall_seconds},
        "fidelities": fidelities,
        "cost_flops": cost,
    }


def _n(x: Any) -> str:
    return "n/a" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:.3g}"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as aligned text for the terminal."""
    lines = [f"job {plan['name']}  workspace {plan['workspace']}",
             f"data: {'prepared' if plan['prepared'] else 'not prepared (estimates marked ~)'} in {plan['data_dir']}",
             f"tokenizer: {plan['tokenizer']}",
             ]
    w = max(14, *(len(r["domain"]) + 2 for r in plan["domains"]))  # grouped domains: text/prose
    lines.append(f"{'domain':<{w}}{'documents':>11}{'tokens':>14}{'prior':>8}  source")
    for r in plan["domains"]:
        mark = "" if r["exact"] else "~"
        lines.append(f"{r['domain']:<{w}}{_n(r['documents']):>11}{mark + _n(r['tokens']):>14}{r['prior']:>8.3f}"
                     f"  {r['source']}")
    s = plan["search"]
    limits = ", ".join(f"{k} {_n(s[k])}" for k in ("runs", "tokens", "flops", "wall_seconds") if s[k] is not None)
    rep = f"; every mixture run {s['repeats']}x with its own seeds, each run counted" if s.get("repeats", 1) > 1 else ""
    lines.append(f"search: {s['strategy']}, {s['n_init']} initial runs, {s['batch_size']} per round{rep}; "
                 f"budget: {limits}")
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
