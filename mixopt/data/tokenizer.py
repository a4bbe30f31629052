"""The tokenizer: a byte-level BPE trained on a sample of every domain, or a given ``tokenizer.json``.

Trained tokenizers are cached by content hash under ``<data_dir>/tokenizers/<hash>/tokenizer.json``; the
hash covers the training sample and the settings, so the same sample is never trained twice. Documents
are separated by the ``<|endoftext|>`` token (id 0) in the token shards.

>>> tok = train_tokenizer(["hello world"] * 100, vocab_size=300)
>>> tok.decode(tok.encode("hello world").ids)
'hello world'
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mixopt.config import TokenizerSettings
from mixopt.errors import DataError

__all__ = [
    "EOS_TOKEN",
    "encode_documents",
    "load_tokenizer",
    "obtain_tokenizer",
    "sample_documents",
    "train_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
_FORMAT = "bytelevel-bpe-v1"  # bump when training changes, so old cache entries are not reused
_SAMPLE_SEED = 0  # fixed: the tokenizer is shared by every job in a workspace, whatever its seed


def sample_documents(docs: Sequence[str], sample_bytes: int, seed: int = _SAMPLE_SEED) -> list[str]:
    """A seeded sample of whole documents (the last one truncated) totalling about ``sample_bytes`` bytes."""
    order = np.random.default_rng(seed).permutation(len(docs))
    out: list[str] = []
    left = sample_bytes
    for i in order:
        text = docs[int(i)]
        n = len(text.encode("utf-8"))
        if n > left:
            out.append(text.encode("utf-8")[:left].decode("utf-8", errors="ignore"))
            break
        out.append(text)
        left -= n
        if left <= 0:
            break
    return out


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """Train a byte-level BPE (``tokenizers``) with ``vocab_size`` entries including ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def load_tokenizer(path: str | Path):
    """Load a ``tokenizer.json``; DataError (one line) if it is missing or unreadable."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise DataError(f"tokenizer {path} does not exist")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
        raise DataError(f"tokenizer {path} is not a valid tokenizer.json ({str(e).splitlines()[0]})") from None


def _sample_key(samples: Mapping[str, Sequence[str]], settings: TokenizerSettings) -> str:
    h = hashlib.blake2b(digest_size=16)
    meta = {"format": _FORMAT, "vocab_size": settings.vocab_size, "sample_bytes": settings.sample_bytes_per_domain}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(samples):
        h.update(name.encode() + b"\0")
        for text in samples[name]:
            h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()


def obtain_tokenizer(
    settings: TokenizerSettings, samples: Mapping[str, Sequence[str]] | None, cache_dir: Path
) -> tuple[Path, str, bool]:
    """Return ``(tokenizer.json path, content hash, trained_now)``.

    With ``settings.path`` the given file is used (its hash is the file's; ``samples`` may be None).
    Otherwise a BPE is trained on ``samples`` (``{domain: sample_documents(docs, sample_bytes)}``) unless
    the cache already holds one for this exact sample and settings.
    """
    if settings.path is not None:
        path = Path(settings.path)
        load_tokenizer(path)  # validate now, with a clear error
        return path, hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest(), False
    assert samples is not None, "samples are needed to train a tokenizer"
    key = _sample_key(samples, settings)
    path = Path(cache_dir) / key / "tokenizer.json"
    if path.is_file():
        return path, key, False
    texts = [t for name in samples for t in samples[name]]
    tok = train_tokenizer(texts, settings.vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"tokenizer.json.tmp-{os.getpid()}")
    try:
        tok.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, key, True


def encode_documents(tok, docs: Sequence[str], eos_id: int, dtype, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Encode documents with ``encode_batch_fast``; return (tokens, doc_lengths) with EOS after each doc.

    tokens: (sum(doc_lengths),) ``dtype``; doc_lengths: (len(docs),) int64 including the EOS token.
    """
    chunks: list[np.ndarray] = []
    lengths = np.empty(len(docs), dtype=np.int64)
    for start in range(0, len(docs), batch):
        encs = tok.encode_batch_fast(list(docs[start : start + batch]), add_special_tokens=False)
        for j, enc in enumerate(encs):
            ids = enc.ids
            arr = np.empty(len(ids) + 1, dtype=dtype)
            arr[:-1] = ids
            arr[-1] = eos_id
            chunks.append(arr)
            lengths[start + j] = len(arr)
    tokens = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
    return tokens, lengths
