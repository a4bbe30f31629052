"""``mixopt plan``: what a job would do, without doing it (no training, nothing written).

Per domain it reports documents and tokens, and says how each figure was obtained (``count``):

- ``exact (shards)``: from the manifest, when the domain is prepared and up to date;
- ``exact``: the domain tokenised in full with the job's tokenizer, when that is cheap: a local source of
  at most :data:`EXACT_BYTES` on disk and the job's real tokenizer at hand (given by ``tokenizer.path``,
  trained by an earlier prepare of exactly these sources, or -- when every domain is local and the whole
  corpus is at most :data:`EXACT_BYTES` -- trained now in memory from the same sample ``prepare`` uses).
  Documents, tokens and the train/validation split are then those ``prepare`` will write;
- ``estimate (±x%)``: from evenly spaced windows of the source
  (:func:`mixopt.data.sources.sample_windows`, 64 kB in 16 windows placed by byte offset): their tokens
  per byte *of the file* (JSON syntax and escaping included) scale the source's size on disk. ``x`` is
  two standard errors of that ratio over the windows, combined with 15% when a quick stand-in BPE (trained on half
  of the samples in about a second) replaces a tokenizer that does not exist yet.

Then the search: proxy runs, initial design, what bounds the proposal (the objective, the floor under each
scored domain and where it applies, the constraints the user set), fidelities and their cost (parameters and
FLOPs from ``mixopt.proxies.ProxyConfig``). :mod:`mixopt.search.preflight` checks the job against these numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.config import JobConfig
from mixopt.data.prepare import SPLIT_SEED, _inputs_key
from mixopt.data.shards import read_manifest, split_point
from mixopt.data.sources import _where, read_documents, sample_windows, source_fingerprint, source_stats
from mixopt.data.tokenizer import EOS_TOKEN, load_tokenizer, sample_documents, train_tokenizer
from mixopt.errors import DataError
from mixopt.proxies import ProxyConfig

__all__ = ["EXACT_BYTES", "count_tokens", "estimate_tokens", "format_plan", "plan_job"]

_SAMPLE_BYTES = 64_000  # per domain, for token estimates
EXACT_BYTES = 16_000_000  # a local source up to this size is tokenised in full (~0.5-1 MB/s of text on a 2-core machine)
_STAND_IN_ERROR = 0.15  # the quick BPE's counts vs the real tokenizer's: -8% to +17% on the demo corpus and a
# folder of mixed text files


def estimate_tokens(cfg: JobConfig, names: list[str], tok=None) -> dict[str, tuple[int, float]]:
    """``{domain: (estimated tokens (EOS included), relative error)}`` from :func:`sample_windows`.

    tok: the tokenizer to count with (default: a quick BPE of ``cfg.tokenizer.vocab_size`` trained on
    every other sampled document of these domains; its error adds 15%). The relative error is two
    standard errors of the windows' ratio estimate. ``max_documents`` caps the estimate."""
    windows = {n: sample_windows(n, cfg.domains[n], _SAMPLE_BYTES) for n in names}
    stand_in = tok is None
    if stand_in:
        texts = [d for ws in windows.values() for docs, _, _ in ws for d in docs[::2]]
        tok = train_tokenizer(texts or ["."], cfg.tokenizer.vocab_size)
    out = {}
    for n, ws in windows.items():
        t = np.array([sum(len(e.ids) for e in tok.encode_batch_fast(docs, add_special_tokens=False)) + ends
                      if docs else ends for docs, _, ends in ws], dtype=np.float64)  # (windows,) tokens
        s = np.array([share for _, share, _ in ws], dtype=np.float64)  # (windows,) fraction of the source
        est = t.sum() / s.sum() if s.sum() > 0 else 0.0
        rel = 0.0
        if len(ws) > 1 and est > 0 and s.sum() < 1.0:
            se = math.sqrt(((t - est * s) ** 2).sum() / (len(ws) * (len(ws) - 1))) / s.mean()
            rel = 2 * se / est
        if stand_in:
            rel = math.hypot(rel, _STAND_IN_ERROR)
        cap = cfg.domains[n].max_documents
        n_docs = sum(len(docs) for docs, _, _ in ws)
        if cap is not None and n_docs and n_docs / s.sum() > cap:
            est *= cap / (n_docs / s.sum())
        out[n] = (int(round(est)), rel)
    return out


def count_tokens(cfg: JobConfig, name: str, tok, docs: list[str] | None = None) -> dict[str, int]:
    """The exact ``documents``, ``tokens`` and ``train_tokens`` ``prepare`` would write for one domain
    (same documents, same EOS, same seeded order and validation split); ``train_tokens`` is
    ``tokens - val_tokens`` (floored at 0) when the domain is too small to split."""
    docs = read_documents(name, cfg.domains[name]) if docs is None else docs
    lengths = np.array([len(e.ids) + 1 for e in tok.encode_batch_fast(docs, add_special_tokens=False)], np.int64)
    lengths = lengths[np.random.default_rng(SPLIT_SEED).permutation(len(docs))]
    tokens = int(lengths.sum())
    try:
        train = int(split_point(lengths, cfg.data.val_tokens, name)[0])
    except DataError:  # too small to split: the preflight says so
        train = max(tokens - cfg.data.val_tokens, 0)
    return {"documents": len(docs), "tokens": tokens, "train_tokens": train}


def _current_tokenizer(cfg: JobConfig, tok_info: dict, data_dir: Path, verify: bool):
    """The job's tokenizer if it exists now: given, or trained by a prepare of these very sources."""
    if cfg.tokenizer.path:
        return load_tokenizer(cfg.tokenizer.path) if Path(cfg.tokenizer.path).is_file() else None
    path = data_dir / tok_info["path"] if tok_info.get("path") else None
    if path is None or not path.is_file():
        return None
    if verify:
        fingerprints = {n: source_fingerprint(n, s) for n, s in cfg.domains.items()}
        if tok_info.get("inputs") != _inputs_key(cfg, fingerprints):
            return None  # prepare would train a new one: the old one's counts are not exact
    return load_tokenizer(path)


def plan_job(cfg: JobConfig, *, verify: bool = True) -> dict[str, Any]:
    """A dict describing the job's data and search cost. Raises DataError on missing/empty sources.

    verify: a manifest entry counts only when its source and tokenizer hashes match (reads every source
    file), documents are counted, and cheap domains are tokenised in full (exact counts); ``False`` (the
    search's preflight) trusts this data folder's manifest and estimates the rest.
    """
    data_dir = Path(cfg.data_dir)
    manifest = read_manifest(data_dir) or {}
    shards = manifest.get("shards", {})
    tok_info = manifest.get("tokenizer") or {}
    real_tok = _current_tokenizer(cfg, tok_info, data_dir, verify)
    domains, todo, docs = [], [], {}
    for name, src in cfg.domains.items():
        stats = source_stats(name, src) if verify else {"where": _where(src), "bytes": None, "documents": None}
        e = shards.get(name)
        row = {"domain": name, "source": stats["where"], "bytes": stats["bytes"]}
        current = e and e.get("tokenizer_hash") == tok_info.get("hash") and (
            not verify or e.get("source_hash") == source_fingerprint(name, src))
        if current:
            row.update(documents=e["documents"], tokens=e["tokens"], train_tokens=e["train_tokens"], exact=True,
                       count="exact (shards)", error=0.0)
        else:
            row.update(documents=stats["documents"], exact=False)
            todo.append(name)
        domains.append(row)
    sizes = [r["bytes"] for r in domains]
    trained_now = False
    if (todo and real_tok is None and verify and cfg.tokenizer.path is None
            and all(b is not None for b in sizes) and sum(sizes) <= EXACT_BYTES):
        # a small corpus: train the job's own tokenizer now, in memory, from the sample prepare takes
        docs = {n: read_documents(n, cfg.domains[n]) for n in cfg.domains}
        samples = {n: sample_documents(d, cfg.tokenizer.sample_bytes_per_domain) for n, d in docs.items()}
        real_tok = train_tokenizer([t for n in samples for t in samples[n]], cfg.tokenizer.vocab_size)
        trained_now = True
    if real_tok is not None and real_tok.token_to_id(EOS_TOKEN) is None:
        real_tok.add_special_tokens([EOS_TOKEN])  # as prepare does for a user tokenizer without it
    rest = []
    for row in domains:
        if row["exact"]:
            continue
        if real_tok is not None and verify and row["bytes"] is not None and row["bytes"] <= EXACT_BYTES:
            row.update(count_tokens(cfg, row["domain"], real_tok, docs.get(row["domain"])), exact=True,
                       count="exact", error=0.0)
        else:
            rest.append(row["domain"])
    if rest:
        est = estimate_tokens(cfg, rest, real_tok)
        for row in domains:
            if row["domain"] in est:
                tokens, rel = est[row["domain"]]
                row.update(tokens=tokens, train_tokens=max(tokens - cfg.data.val_tokens, 0), error=rel,
                           count=f"estimate (±{100 * rel:.0f}%)")
    tok = real_tok
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
        "prepared": bool(domains) and all(r["count"] == "exact (shards)" for r in domains),
        "tokenizer": (f"load {cfg.tokenizer.path}" if cfg.tokenizer.path else
                      f"byte-level BPE, vocab {cfg.tokenizer.vocab_size}, "
                      f"{cfg.tokenizer.sample_bytes_per_domain:,} sample bytes/domain"
                      + (" (trained now in memory, as prepare will)" if trained_now else " (trained)" if tok is not None
                         else " (not trained yet: a stand-in counts)")),
        "domains": domains,
        "train_tokens": total_train,
        "search": {"strategy": cfg.search.strategy, "n_init": cfg.search.n_init, "batch_size": cfg.search.batch_size,
                   "repeats": cfg.search.repeats, "runs": runs, "tokens": cfg.budget.tokens, "flops": cfg.budget.flops,
                   "wall_seconds": cfg.budget.wall_seconds},
        "fidelities": fidelities,
        "cost_flops": cost,
        "mixture": _mixture_rules(cfg),
    }


def _mixture_rules(cfg: JobConfig) -> dict[str, Any]:
    """What bounds the proposal: the objective, the scored floors (``JobConfig.scored_floors``) and where they
    apply (``JobConfig.scored_floor_scope``, ``auto`` resolved), and the constraints the user set."""
    c = cfg.constraints
    set_by_user = c.model_dump(exclude_defaults=True,
                               include={"min_weight", "max_weight", "max_epochs", "target_tokens", "kl_to_prior"})
    return {"objective": cfg.search.objective, "scored_floor": c.scored_floor, "floors": cfg.scored_floors(),
            "floor_scope": cfg.scored_floor_scope(), "floor_scope_setting": c.scored_floor_scope,
            "constraints": set_by_user}


def _n(x: Any) -> str:
    return "n/a" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:.3g}"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as aligned text for the terminal."""
    lines = [f"job {plan['name']}  workspace {plan['workspace']}",
             f"data: {'prepared' if plan['prepared'] else 'not prepared'}"
             f"{' (estimates marked ~)' if any(not r['exact'] for r in plan['domains']) else ''} in {plan['data_dir']}",
             f"tokenizer: {plan['tokenizer']}",
             ]
    w = max(14, *(len(r["domain"]) + 2 for r in plan["domains"]))  # grouped domains: text/prose
    lines.append(f"{'domain':<{w}}{'documents':>11}{'tokens':>14}{'prior':>8}  {'count':<17} source")
    for r in plan["domains"]:
        mark = "" if r["exact"] else "~"
        lines.append(f"{r['domain']:<{w}}{_n(r['documents']):>11}{mark + _n(r['tokens']):>14}{r['prior']:>8.3f}"
                     f"  {r['count']:<17} {r['source']}")
    s = plan["search"]
    limits = ", ".join(f"{k} {_n(s[k])}" for k in ("runs", "tokens", "flops", "wall_seconds") if s[k] is not None)
    rep = f"; every mixture run {s['repeats']}x with its own seeds, each run counted" if s.get("repeats", 1) > 1 else ""
    lines.append(f"search: {s['strategy']}, {s['n_init']} initial runs, {s['batch_size']} per round{rep}; "
                 f"budget: {limits}")
    lines.extend(_format_mixture_rules(plan.get("mixture")))
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


def _format_mixture_rules(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return []
    obj = m["objective"]
    lines = [f"objective: {obj if isinstance(obj, str) else ', '.join(f'{k} {v:g}' for k, v in obj.items())}"]
    floors = m["floors"]
    if m["scored_floor"] <= 0:
        lines.append("scored floor: off (constraints.scored_floor 0)")
    elif not floors:
        lines.append("scored floor: none (the objective scores fewer than two domains, or min_weight bounds each one)")
    else:
        where = ("every proxy run and the proposal" if m["floor_scope"] == "search" else
                 "the proposal only; the proxies explore below it")
        how = f"scope {m['floor_scope']}" + (" from auto" if m["floor_scope_setting"] == "auto" else "")
        lines.append(f"scored floor: {next(iter(floors.values())):.3g} for each of {', '.join(floors)}, on {where} "
                     f"({how}; soft: cut to a domain's cap, dropped when it does not fit)")
    if m["constraints"]:
        lines.append("constraints: " + ", ".join(f"{k} {v}" for k, v in m["constraints"].items()))
    return lines
