"""Where a domain's documents come from: local files (jsonl/json/parquet/plain text) or a HF dataset.

A :class:`~mixopt.config.DomainSource` gives either ``path`` (a file, a directory searched recursively, or
a glob) or ``hf`` (a name for ``datasets.load_dataset``, with ``hf_config`` and ``split``; a local dataset
directory works offline). Record files (``.jsonl``, ``.json``, ``.parquet``) hold one document per record
in ``text_field``; any other supported file (``.txt``, ``.md``, ``.py``, ...) is one document.

Local jsonl/parquet are read directly (``json`` line by line, ``pyarrow.parquet`` one column) rather than
through ``datasets.load_dataset``: that would write an Arrow cache copy of every file, and line-level
errors name the file and line.

>>> docs = read_documents("code", DomainSource(path="corpus/code"))  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import glob
import hashlib
import itertools
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from mixopt.config import DomainSource
from mixopt.errors import DataError

__all__ = [
    "RECORD_SUFFIXES",
    "TEXT_SUFFIXES",
    "iter_documents",
    "read_documents",
    "resolve_files",
    "sample_source",
    "source_fingerprint",
    "source_stats",
]

RECORD_SUFFIXES = (".jsonl", ".json", ".parquet")
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py", ".c", ".h", ".js", ".ts", ".html", ".tex", ".csv", ".tsv")
_SUPPORTED = RECORD_SUFFIXES + TEXT_SUFFIXES


def _where(src: DomainSource) -> str:
    if src.hf is not None:
        return f"hf:{src.hf}" + (f"/{src.hf_config}" if src.hf_config else "") + f"[{src.split}]"
    return str(src.path)


def resolve_files(name: str, src: DomainSource) -> list[Path]:
    """The sorted files of a local source: a file, a directory (recursive) or a glob pattern."""
    assert src.path is not None
    p = Path(src.path)
    if any(ch in src.path for ch in "*?["):
        files = [Path(f) for f in glob.glob(src.path, recursive=True)]
        files = [f for f in files if f.is_file() and f.suffix.lower() in _SUPPORTED]
        if not files:
            raise DataError(f"domain {name!r}: no supported files match {src.path} (looked for {', '.join(_SUPPORTED)})")
    elif p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in _SUPPORTED]
        files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(p).parts)]
        if not files:
            raise DataError(f"domain {name!r}: directory {p} has no supported files ({', '.join(_SUPPORTED)})")
    elif p.is_file():
        if p.suffix.lower() not in _SUPPORTED:
            raise DataError(f"domain {name!r}: unsupported file type {p} (use one of {', '.join(_SUPPORTED)})")
        files = [p]
    else:
        raise DataError(f"domain {name!r}: source {p} does not exist")
    return sorted(files)


def _missing_field(name: str, where: str, field: str, fields: Any) -> DataError:
    return DataError(f"domain {name!r}: {where} has no text field {field!r} (fields: {', '.join(map(str, fields))})")


def _records_text(name: str, where: str, rec: Any, field: str) -> str:
    if not isinstance(rec, dict):
        raise DataError(f"domain {name!r}: {where} is not a JSON object")
    if field not in rec:
        raise _missing_field(name, where, field, list(rec))
    value = rec[field]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"domain {name!r}: {where} field {field!r} is {type(value).__name__}, not text")
    return value


def _iter_file(name: str, f: Path, field: str) -> Iterator[str]:
    suffix = f.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataError(f"domain {name!r}: {f} is not a readable parquet file ({str(e).splitlines()[0]})") from None
        if field not in pf.schema_arrow.names:
            raise _missing_field(name, str(f), field, pf.schema_arrow.names)
        for batch in pf.iter_batches(columns=[field], batch_size=4096):
            for value in batch.column(0).to_pylist():
                if value is not None and not isinstance(value, str):
                    raise DataError(f"domain {name!r}: {f} column {field!r} is not text")
                yield value or ""
    elif suffix in (".jsonl", ".json"):
        text = f.read_text(encoding="utf-8", errors="replace")
        if suffix == ".json" and text.lstrip().startswith("["):
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"domain {name!r}: {f} is not valid JSON ({e.msg}, line {e.lineno})") from None
            for i, rec in enumerate(records):
                yield _records_text(name, f"{f}[{i}]", rec, field)
            return
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"domain {name!r}: {f}:{lineno} is not valid JSON ({e.msg})") from None
            yield _records_text(name, f"{f}:{lineno}", rec, field)
    else:
        yield f.read_text(encoding="utf-8", errors="replace")


@lru_cache(maxsize=8)
def _load_hf(name: str, hf: str, hf_config: str | None, split: str):
    import datasets

    try:
        return datasets.load_dataset(hf, hf_config, split=split)
    except Exception as e:  # network, missing dataset, bad split: all one user-facing error
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"domain {name!r}: cannot load HF dataset {hf!r} ({first})") from None


def _iter_hf(name: str, src: DomainSource) -> Iterator[str]:
    ds = _load_hf(name, src.hf, src.hf_config, src.split)
    if src.text_field not in ds.column_names:
        raise _missing_field(name, _where(src), src.text_field, ds.column_names)
    for value in ds[src.text_field]:
        if value is not None and not isinstance(value, str):
            raise DataError(f"domain {name!r}: {_where(src)} field {src.text_field!r} is not text")
        yield value or ""


def iter_documents(name: str, src: DomainSource) -> Iterator[str]:
    """All raw documents of a source in a fixed order (files sorted), before filtering."""
    if src.hf is not None:
        yield from _iter_hf(name, src)
        return
    for f in resolve_files(name, src):
        yield from _iter_file(name, f, src.text_field)


def read_documents(name: str, src: DomainSource) -> list[str]:
    """The documents of a domain after ``min_chars`` and ``max_documents``; DataError if none are left."""
    docs: list[str] = []
    seen = 0
    for text in iter_documents(name, src):
        seen += 1
        if len(text) < max(src.min_chars, 1):
            continue
        docs.append(text)
        if src.max_documents is not None and len(docs) >= src.max_documents:
            break
    if seen == 0:
        raise DataError(f"domain {name!r}: source {_where(src)} has no documents")
    if not docs:
        raise DataError(
            f"domain {name!r}: no documents left after filtering (min_chars={src.min_chars}; {seen} read from {_where(src)})"
        )
    return docs


def source_fingerprint(name: str, src: DomainSource) -> str:
    """A hash of the source's content and filter settings: it changes exactly when its documents can."""
    h = hashlib.blake2b(digest_size=16)
    settings = src.model_dump(exclude={"path"})
    h.update(json.dumps(settings, sort_keys=True).encode())
    if src.hf is not None:
        ds = _load_hf(name, src.hf, src.hf_config, src.split)
        h.update(str(getattr(ds, "_fingerprint", "")).encode())
        return h.hexdigest()
    base = Path(src.path) if Path(src.path).is_dir() else None
    for f in resolve_files(name, src):
        rel = f.relative_to(base) if base else f.name
        h.update(str(rel).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def source_stats(name: str, src: DomainSource) -> dict[str, Any]:
    """Cheap facts for ``mixopt plan`` (no parsing of text): files, bytes and a document count."""
    if src.hf is not None:
        ds = _load_hf(name, src.hf, src.hf_config, src.split)
        return {"files": None, "bytes": None, "documents": len(ds), "where": _where(src)}
    files = resolve_files(name, src)
    n_bytes = docs = 0
    for f in files:
        n_bytes += f.stat().st_size
        suffix = f.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            docs += pq.ParquetFile(f).metadata.num_rows
        elif suffix in (".jsonl", ".json"):
            with open(f, "rb") as fh:
                docs += sum(1 for line in fh if line.strip())
        else:
            docs += 1
    if src.max_documents is not None:
        docs = min(docs, src.max_documents)
    return {"files": len(files), "bytes": n_bytes, "documents": docs, "where": _where(src)}


def sample_source(name: str, src: DomainSource, budget_bytes: int = 64_000, pieces: int = 16) -> tuple[list[str], float]:
    """Documents spread evenly over a source, for estimates that must not read all of it.

    Returns ``(docs, share)``: the documents (after the ``min_chars`` filter) and the fraction of the
    source they were read from -- by bytes on disk for local files (so JSON syntax and escaping are
    counted, as they are in the file sizes an estimate scales by), by records for HF datasets. A quantity
    measured on ``docs`` divided by ``share`` estimates it for the whole source (``max_documents`` aside).
    ``pieces`` windows of ``budget_bytes / pieces`` bytes each start at evenly spaced offsets.
    """
    keep = max(src.min_chars, 1)
    if src.hf is not None:
        ds = _load_hf(name, src.hf, src.hf_config, src.split)
        docs, used = [], 0
        for text in itertools.islice(_iter_hf(name, src), max(1, budget_bytes // 256)):
            used += 1
            if len(text) >= keep:
                docs.append(text)
        return docs, used / max(len(ds), 1)
    files = resolve_files(name, src)
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)
    if total == 0:
        return [], 1.0
    starts = list(itertools.accumulate(sizes, initial=0))
    per = max(1, budget_bytes // pieces)
    docs: list[str] = []
    span = 0.0
    seen: set[tuple[int, int]] = set()
    for j in range(pieces):
        offset = total * j // pieces
        i = bisect.bisect_right(starts, offset) - 1
        got, nbytes = _sample_file(name, files[i], offset - starts[i], per, src.text_field, i, seen)
        docs += [d for d in got if len(d) >= keep]
        span += nbytes
    return docs, span / total


def _sample_file(name: str, f: Path, pos: int, budget: int, field: str, index: int,
                 seen: set[tuple[int, int]]) -> tuple[list[str], float]:
    """Documents of one file from about byte ``pos`` on (``budget`` bytes), and the bytes they span.

    ``seen`` holds ``(file index, start byte)`` of what was read already, so windows never overlap."""
    suffix = f.suffix.lower()
    size = f.stat().st_size
    if suffix == ".jsonl":
        docs, span = [], 0
        with open(f, "rb") as fh:
            fh.seek(pos)
            if pos:
                fh.readline()  # the rest of a line that started before the window
            while span < budget:
                start = fh.tell()
                line = fh.readline()
                if not line or (index, start) in seen:
                    break
                seen.add((index, start))
                span += len(line)
                if line.strip():
                    where = f"{f} (byte {start})"
                    try:
                        rec = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise DataError(f"domain {name!r}: {where} is not valid JSON ({e})") from None
                    docs.append(_records_text(name, where, rec, field))
        return docs, span
    if (index, 0) in seen:
        return [], 0
    seen.add((index, 0))
    if suffix in _RECORD_SUFFIXES_WHOLE:  # .json arrays and parquet: records from the start of the file
        docs, n = [], 0
        for text in _iter_file(name, f, field):
            docs.append(text)
            n += len(text.encode("utf-8"))
            if n >= budget:
                break
        total = source_stats(name, DomainSource(path=str(f), text_field=field))["documents"]
        return docs, size * len(docs) / max(total, 1)
    with open(f, "rb") as fh:  # one document per file: its first `budget` bytes
        head = fh.read(budget)
    return [head.decode("utf-8", errors="ignore")], len(head)


_RECORD_SUFFIXES_WHOLE = (".json", ".parquet")
