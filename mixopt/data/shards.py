"""Token shards on disk and :class:`PreparedData`, the read side of a prepared workspace.

Layout under ``<workspace>/data/<data_key>`` (``cfg.data_dir``: one folder per data configuration, keyed
by a hash of the domain sources, the tokenizer settings and ``data.val_tokens``, so jobs that share a
workspace but not their data never overwrite each other's shards)::

    manifest.json                  # domains (config order), tokenizer, one entry per domain shard
    tokenizers/<hash>/tokenizer.json
    shards/<domain>.bin            # one flat uint16/uint32 token array: train tokens, then val tokens
                                   # (a grouped domain web/hq is shards/web+hq.bin)

Each shard is the domain's documents in a seeded order, each followed by ``<|endoftext|>``; the last
whole documents (at least ``data.val_tokens`` tokens) form the validation split. Every file is written to
a temporary name and moved into place with ``os.replace``, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.errors import DataError

__all__ = [
    "MANIFEST",
    "PreparedData",
    "atomic_write_bytes",
    "atomic_writer",
    "load_prepared",
    "read_manifest",
    "shard_dtype",
    "split_point",
    "write_manifest",
]

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def shard_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` while every id fits (vocab_size <= 65536), else ``uint32``."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def split_point(doc_lengths: np.ndarray, val_tokens: int, domain: str) -> tuple[int, int]:
    """Where the validation split starts: ``(train_tokens, val_documents)``.

    doc_lengths: (n_docs,) tokens per document (incl. EOS), in shard order. The validation split is the
    shortest run of whole trailing documents with at least ``val_tokens`` tokens; when that would take more
    than half the domain (few, long documents) it is the last ``val_tokens`` tokens instead (then
    ``val_documents`` counts the document that is cut). Raises DataError if the domain has fewer than
    ``2 * val_tokens`` tokens.
    """
    total = int(doc_lengths.sum())
    if total < 2 * val_tokens:
        raise DataError(
            f"domain {domain!r}: only {total} tokens, need at least 2 x data.val_tokens = {2 * val_tokens} "
            "(lower data.val_tokens or add documents)"
        )
    tail = np.cumsum(doc_lengths[::-1])
    n_val_docs = int(np.searchsorted(tail, val_tokens)) + 1
    if tail[n_val_docs - 1] <= total // 2:
        return total - int(tail[n_val_docs - 1]), n_val_docs
    cut = total - val_tokens
    starts = np.cumsum(doc_lengths) - doc_lengths
    return cut, int((starts + doc_lengths > cut).sum())


@contextmanager
def atomic_writer(path: Path):
    """Open a temporary file next to ``path`` for binary writing; on a clean exit it is synced and moved
    onto ``path`` with ``os.replace``, on an exception it is deleted (``path`` is never half-written)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    with atomic_writer(path) as f:
        f.write(data)


def read_manifest(data_dir: Path) -> dict[str, Any] | None:
    """The manifest, or None when there is none (or it is from another format version)."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return m if m.get("version") == MANIFEST_VERSION else None


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    manifest = {**manifest, "version": MANIFEST_VERSION}
    atomic_write_bytes(Path(data_dir) / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


@dataclass
class PreparedData:
    """Token shards of every domain, memory-mapped.

    train/val: ``{domain: (n_tokens,) uint16|uint32 memmap}``. Pickles as its folder (workers re-open the
    memmaps), so it is cheap to send to Ray workers.

    >>> data = load_prepared("workspace/data")  # doctest: +SKIP
    >>> data.val_sequences(128, max_tokens=8192)["code"].shape  # doctest: +SKIP
    torch.Size([63, 129])
    """

    data_dir: Path
    domains: list[str]
    vocab_size: int
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    tokenizer_path: Path
    eos_id: int = 0
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    work: dict[str, str] = field(default_factory=dict, repr=False)  # what the last prepare did per domain

    def __reduce__(self):
        return (load_prepared, (str(self.data_dir),))

    @property
    def dtype(self) -> np.dtype:
        return self.train[self.domains[0]].dtype

    def train_tokens(self) -> np.ndarray:
        """(k,) int64 train tokens per domain, in ``domains`` order."""
        return np.array([len(self.train[d]) for d in self.domains], dtype=np.int64)

    def prior(self) -> np.ndarray:
        """(k,) float64 train-token shares: the natural mixture."""
        n = self.train_tokens().astype(np.float64)
        return n / n.sum()

    def val_sequences(self, seq_len: int, max_tokens: int | None = None) -> dict[str, Any]:
        """Fixed held-out sequences per domain: ``{domain: LongTensor (N, seq_len+1)}``.

        Non-overlapping windows from the start of each validation split; ``N = min(windows available,
        max(1, max_tokens // (seq_len+1)))`` (all windows when ``max_tokens`` is None). Raises DataError
        naming the domain when its validation split is shorter than ``seq_len + 1`` tokens.
        """
        import torch

        if seq_len < 1:
            raise DataError(f"seq_len must be >= 1, got {seq_len}")
        width = seq_len + 1
        out = {}
        for d in self.domains:
            val = self.val[d]
            n_avail = len(val) // width
            if n_avail == 0:
                raise DataError(
                    f"domain {d!r}: validation split has {len(val)} tokens, fewer than seq_len+1 = {width}"
                )
            n = n_avail if max_tokens is None else min(n_avail, max(1, int(max_tokens) // width))
            out[d] = torch.from_numpy(np.asarray(val[: n * width], dtype=np.int64).reshape(n, width))
        return out

    @cached_property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` the shards were made with."""
        from mixopt.data.tokenizer import load_tokenizer

        return load_tokenizer(self.tokenizer_path)

    def decode(self, ids) -> str:
        """Token ids (any 1-D sequence) back to text; ``<|endoftext|>`` is kept as a separator."""
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)], skip_special_tokens=False)

    def summary(self) -> list[dict[str, Any]]:
        """One row per domain: documents, train/val tokens, source (from the manifest)."""
        rows = []
        for d in self.domains:
            e = self.manifest["shards"][d]
            rows.append({"domain": d, "documents": e["documents"], "train_tokens": e["train_tokens"],
                         "val_tokens": e["val_tokens"], "source": e["source"], "work": self.work.get(d, "")})
        return rows


def load_prepared(data_dir: str | Path) -> PreparedData:
    """Open the shards written by :func:`~mixopt.data.prepare_data`; DataError if any domain is missing."""
    data_dir = Path(data_dir).resolve()
    m = read_manifest(data_dir)
    if m is None:
        raise DataError(f"{data_dir}: no prepared data (run `mixopt prepare job.yaml`)")
    tok = m["tokenizer"]
    dtype = np.dtype(m["dtype"])
    train, val = {}, {}
    for d in m["domains"]:
        e = m["shards"].get(d)
        if e is None or e.get("tokenizer_hash") != tok["hash"]:
            raise DataError(f"{data_dir}: domain {d!r} is not prepared (run `mixopt prepare job.yaml`)")
        path = data_dir / e["file"]
        n = int(e["tokens"])
        if not path.is_file() or path.stat().st_size != n * dtype.itemsize:
            raise DataError(f"{data_dir}: shard {path.name} of domain {d!r} is missing or truncated (re-run prepare)")
        arr = np.memmap(path, dtype=dtype, mode="r", shape=(n,))
        train[d] = arr[: int(e["train_tokens"])]
        val[d] = arr[int(e["train_tokens"]) :]
    tok_path = Path(tok["path"])
    return PreparedData(
        data_dir=data_dir,
        domains=list(m["domains"]),
        vocab_size=int(tok["vocab_size"]),
        train=train,
        val=val,
        tokenizer_path=tok_path if tok_path.is_absolute() else data_dir / tok_path,
        eos_id=int(tok["eos_id"]),
        manifest=m,
    )
