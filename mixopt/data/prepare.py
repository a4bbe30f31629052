"""``prepare_data``: sources → tokenizer → token shards, idempotently and atomically.

A second run with the same sources, tokenizer and settings does no work: each domain's manifest entry
records its source hash, tokenizer hash and split settings, and a domain is only re-tokenized when one of
them changed. The manifest is rewritten (atomically) after every finished domain and only ever lists
shards that are complete and made with the current tokenizer, so an interrupted prepare leaves no half
shard and no manifest entry claiming one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mixopt.config import JobConfig
from mixopt.data.shards import (
    PreparedData,
    atomic_writer,
    load_prepared,
    read_manifest,
    shard_dtype,
    split_point,
    write_manifest,
)
from mixopt.data.sources import _where, read_documents, source_fingerprint
from mixopt.data.tokenizer import (
    EOS_TOKEN,
    encode_documents,
    load_tokenizer,
    obtain_tokenizer,
    sample_documents,
)
from mixopt.errors import DataError

__all__ = ["prepare_data"]

log = logging.getLogger(__name__)

SPLIT_SEED = 0  # document order within a shard; fixed so shards are shared by every job with the same data


@contextmanager
def _locked(data_dir: Path):
    """One prepare per data folder at a time (an advisory lock on ``.lock``)."""
    with open(data_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _inputs_key(cfg: JobConfig, fingerprints: dict[str, str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"tokenizer": cfg.tokenizer.model_dump(), "sources": fingerprints}, sort_keys=True).encode())
    return h.hexdigest()


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def prepare_data(cfg: JobConfig, progress: bool = True) -> PreparedData:
    """Tokenize every domain of ``cfg`` into shards under ``cfg.data_dir``; return the :class:`PreparedData`.

    Idempotent (up-to-date domains are skipped; ``result.work[domain]`` says ``"prepared"`` or
    ``"up to date"``). Raises a one-line DataError naming the domain or file on bad sources.
    """
    from tqdm.auto import tqdm

    data_dir = Path(cfg.data_dir).resolve()
    try:
        (data_dir / "shards").mkdir(parents=True, exist_ok=True)
    except OSError as e:  # the workspace (or a folder on the way) is a file, or not writable
        raise DataError(f"{data_dir}: cannot create the data folder ({e.strerror}: {e.filename})") from None
    with _locked(data_dir):
        for stale in (data_dir / "shards").glob("*.tmp-*"):  # left by a killed run (we hold the lock)
            stale.unlink(missing_ok=True)
        names = list(cfg.domains)
        fingerprints = {n: source_fingerprint(n, cfg.domains[n]) for n in names}  # missing sources fail here
        old = read_manifest(data_dir) or {}
        inputs = _inputs_key(cfg, fingerprints)

        # --- tokenizer -----------------------------------------------------------------------------------
        old_tok = old.get("tokenizer") or {}
        old_tok_path = Path(old_tok.get("path", "")) if old_tok else None
        if old_tok_path is not None and not old_tok_path.is_absolute():
            old_tok_path = data_dir / old_tok_path
        reuse = cfg.tokenizer.path is None and old_tok.get("inputs") == inputs  # a given file is always re-hashed
        if reuse and old_tok_path is not None and old_tok_path.is_file():
            tok_path, tok_hash, trained = old_tok_path, old_tok["hash"], False
        else:
            samples = None
            if cfg.tokenizer.path is None:
                samples = {}
                for n in tqdm(names, desc="sample", disable=not progress, unit="domain"):
                    samples[n] = sample_documents(read_documents(n, cfg.domains[n]), cfg.tokenizer.sample_bytes_per_domain)
            t0 = time.perf_counter()
            tok_path, tok_hash, trained = obtain_tokenizer(cfg.tokenizer, samples, data_dir / "tokenizers")
            if trained:
                log.info("trained tokenizer %s in %.1fs", tok_hash[:12], time.perf_counter() - t0)
        tok = load_tokenizer(tok_path)
        vocab_size = tok.get_vocab_size()
        eos_id = tok.token_to_id(EOS_TOKEN)
        if eos_id is None:
            tok.add_special_tokens([EOS_TOKEN])  # a user tokenizer without our separator: append it
            eos_id = tok.token_to_id(EOS_TOKEN)
            vocab_size = tok.get_vocab_size()
        dtype = shard_dtype(vocab_size)
        manifest = {
            "domains": names,
            "dtype": dtype.name,
            "tokenizer": {"path": _rel(tok_path, data_dir), "hash": tok_hash, "inputs": inputs,
                          "vocab_size": vocab_size, "eos_id": eos_id},
            "shards": {},
        }
        old_shards = old.get("shards", {})
        # keep complete, current entries of this job's domains (a failure below must not lose them)
        for n in names:
            e = old_shards.get(n)
            if e and e.get("tokenizer_hash") == tok_hash and e.get("dtype") == dtype.name:
                manifest["shards"][n] = e

        # --- shards --------------------------------------------------------------------------------------
        work: dict[str, str] = {}
        for n in names:
            e = manifest["shards"].get(n)
            path = data_dir / "shards" / f"{n.replace('/', '+')}.bin"  # a grouped domain web/hq: web+hq.bin
            if (
                e is not None
                and e.get("source_hash") == fingerprints[n]
                and e.get("val_tokens_setting") == cfg.data.val_tokens
                and e.get("split_seed") == SPLIT_SEED
                and path.is_file()
                and path.stat().st_size == e["tokens"] * dtype.itemsize
            ):
                work[n] = "up to date"
                continue
            if manifest["shards"].pop(n, None) is not None or n in old_shards:
                write_manifest(data_dir, manifest)  # stop claiming the old shard before replacing it
            same = _find_same_shard(data_dir, tok_path, fingerprints[n], n, cfg.data.val_tokens, dtype)
            if same is not None:  # another data folder of the workspace has exactly these tokens
                manifest["shards"][n] = _copy_shard(same, path)
                work[n] = "reused"
            else:
                manifest["shards"][n] = _write_domain(cfg, n, tok, eos_id, dtype, path, progress)
                work[n] = "prepared"
            manifest["shards"][n].update(source_hash=fingerprints[n], tokenizer_hash=tok_hash)
            # re-order entries to config order and persist after every domain
            manifest["shards"] = {k: manifest["shards"][k] for k in names if k in manifest["shards"]}
            write_manifest(data_dir, manifest)
        write_manifest(data_dir, manifest)
    data = load_prepared(data_dir)
    data.work = work
    return data


def _file_hash(path: Path) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def _find_same_shard(data_dir: Path, tok_path: Path, source_hash: str, name: str, val_tokens: int,
                     dtype: np.dtype) -> tuple[Path, dict] | None:
    """A shard of domain ``name`` in a sibling data folder (``<workspace>/data/*``) made from the same source,
    with a tokenizer of the same content and the same split: ``(its file, its manifest entry)``, or None."""
    mine = None
    for other in sorted(p for p in data_dir.parent.iterdir() if p.is_dir() and p != data_dir):
        m = read_manifest(other) or {}
        e = (m.get("shards") or {}).get(name)
        if not (e and e.get("source_hash") == source_hash and e.get("val_tokens_setting") == val_tokens
                and e.get("split_seed") == SPLIT_SEED and e.get("dtype") == dtype.name):
            continue
        file, tok = other / e["file"], Path((m.get("tokenizer") or {}).get("path", ""))
        tok = tok if tok.is_absolute() else other / tok
        if not (file.is_file() and file.stat().st_size == e["tokens"] * dtype.itemsize and tok.is_file()):
            continue
        mine = mine or _file_hash(tok_path)
        if _file_hash(tok) == mine:
            return file, e
    return None


def _copy_shard(found: tuple[Path, dict], path: Path) -> dict:
    """Copy a shard found by :func:`_find_same_shard` to ``path`` (atomically); return its manifest entry."""
    src, entry = found
    with atomic_writer(path) as f, open(src, "rb") as g:
        shutil.copyfileobj(g, f, 1 << 24)
    log.info("domain %s: reused %s (same source and tokenizer)", path.stem, src)
    return dict(entry) | {"file": f"shards/{path.name}"}


def _write_domain(cfg: JobConfig, name: str, tok, eos_id: int, dtype: np.dtype, path: Path, progress: bool) -> dict:
    from tqdm.auto import tqdm

    src = cfg.domains[name]
    docs = read_documents(name, src)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(docs))
    docs = [docs[i] for i in order]
    t0 = time.perf_counter()
    lengths = []
    step = 2048
    # tokens stream to a temporary file (the validation split is the tail, so nothing has to move);
    # it replaces the shard only if the whole domain encoded and the split is valid
    with atomic_writer(path) as f, tqdm(total=len(docs), desc=f"tokenize {name}", disable=not progress,
                                        unit="doc") as bar:
        for start in range(0, len(docs), step):
            t, ln = encode_documents(tok, docs[start : start + step], eos_id, dtype)
            f.write(memoryview(t))
            lengths.append(ln)
            bar.update(len(ln))
        doc_lengths = np.concatenate(lengths)
        n_train, n_val_docs = split_point(doc_lengths, cfg.data.val_tokens, name)
    n_tokens = int(doc_lengths.sum())
    secs = time.perf_counter() - t0
    log.info("domain %s: %d documents, %d tokens (%.0f tokens/s)", name, len(docs), n_tokens, n_tokens / max(secs, 1e-9))
    return {
        "file": f"shards/{path.name}",
        "source": _where(src),
        "documents": len(docs),
        "train_documents": len(docs) - n_val_docs,
        "val_documents": n_val_docs,
        "chars": int(sum(len(d) for d in docs)),
        "tokens": n_tokens,
        "train_tokens": int(n_train),
        "val_tokens": n_tokens - int(n_train),
        "val_tokens_setting": cfg.data.val_tokens,
        "split_seed": SPLIT_SEED,
        "dtype": dtype.name,
    }
