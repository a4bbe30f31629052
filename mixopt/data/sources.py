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
import fnmatch
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
    "file_format",
    "iter_documents",
    "read_documents",
    "resolve_files",
    "sample_source",
    "sample_windows",
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


def _base_dir(src: DomainSource) -> Path:
    """The folder ``exclude`` patterns are relative to: the directory, a glob's fixed leading folders, or
    a file's parent."""
    p = Path(src.path)
    if any(ch in src.path for ch in "*?["):
        first = next(i for i, part in enumerate(p.parts) if any(c in part for c in "*?["))
        return Path(*p.parts[:first]) if first else Path(".")
    return p if p.is_dir() else p.parent


def _excluded(f: Path, base: Path, patterns: list[str]) -> bool:
    """Whether ``f`` matches an ``exclude`` pattern (relative to ``base``, or absolute)."""
    if not patterns:
        return False
    try:
        rel = f.relative_to(base).as_posix()
    except ValueError:
        rel = f.as_posix()
    absolute = f.resolve().as_posix()
    return any(fnmatch.fnmatchcase(absolute if Path(pat).is_absolute() else rel, pat) for pat in patterns)


def file_format(f: Path, src: DomainSource) -> str:
    """How ``f`` is read: ``text`` (one document), ``jsonl``, ``json`` or ``parquet``; ``""`` when
    ``format: auto`` does not know its extension."""
    if src.format != "auto":
        return src.format
    suffix = f.suffix.lower()
    if suffix in RECORD_SUFFIXES:
        return suffix[1:]
    return "text" if suffix in TEXT_SUFFIXES else ""


def resolve_files(name: str, src: DomainSource) -> list[Path]:
    """The sorted files of a local source: a file, a directory (recursive) or a glob pattern, less the
    ``exclude`` matches. With ``format: auto`` only known extensions are taken; any other format takes
    every file (hidden ones in a directory aside)."""
    assert src.path is not None
    p = Path(src.path)
    known = "supported" if src.format == "auto" else "readable"
    hint = f" (looked for {', '.join(_SUPPORTED)}; set format: text to read any file as plain text)" \
        if src.format == "auto" else ""
    if any(ch in src.path for ch in "*?["):
        files = [Path(f) for f in glob.glob(src.path, recursive=True)]
        files = [f for f in files if f.is_file() and file_format(f, src)]
        what = f"no {known} files match {src.path}"
    elif p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file() and file_format(f, src)]
        files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(p).parts)]
        what = f"directory {p} has no {known} files"
    elif p.is_file():
        if not file_format(p, src):
            raise DataError(f"domain {name!r}: unsupported file type {p} (use one of {', '.join(_SUPPORTED)}, "
                            "or set format: text to read it as plain text)")
        files = [p]
        what = f"{p}"
    else:
        raise DataError(f"domain {name!r}: source {p} does not exist")
    if not files:
        raise DataError(f"domain {name!r}: {what}{hint}")
    kept = [f for f in files if not _excluded(f, _base_dir(src), src.exclude)]
    if not kept:
        raise DataError(f"domain {name!r}: exclude {src.exclude} drops every one of the {len(files)} file(s) of {what}")
    return sorted(kept)


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


def _read_text(name: str, f: Path, strict: bool) -> str:
    """One file as one document. ``strict`` (``format: text``): undecodable bytes are a DataError naming
    the file and byte; otherwise they become U+FFFD."""
    data = f.read_bytes()
    if not strict:
        return data.decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"domain {name!r}: {f} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                        "drop it with exclude: [...]") from None


def _iter_file(name: str, f: Path, field: str, fmt: str, strict: bool = False) -> Iterator[str]:
    suffix = "." + fmt
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
        yield _read_text(name, f, strict)


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
        yield from _iter_file(name, f, src.text_field, file_format(f, src), strict=src.format == "text")


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
    settings = {k: v for k, v in src.settings().items() if k != "path"}
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
        suffix = "." + file_format(f, src)
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

    Returns ``(docs, share)``: the sampled documents (and pieces of documents) and the fraction of the
    source they cover (see :func:`sample_windows`, whose windows this joins). A quantity measured on
    ``docs`` divided by ``share`` estimates it for the whole source (``max_documents`` aside).
    """
    windows = sample_windows(name, src, budget_bytes, pieces)
    return [d for docs, _, _ in windows for d in docs], sum(w for _, w, _ in windows)


def sample_windows(name: str, src: DomainSource, budget_bytes: int = 64_000,
                   pieces: int = 16) -> list[tuple[list[str], float, int]]:
    """``pieces`` evenly spaced windows of a source, ``budget_bytes`` in all: ``[(docs, share, ends)]``.

    share: the fraction of the source the window covers -- by bytes on disk for local files (JSON syntax
    and escaping counted, as in the file sizes an estimate scales by), by records for HF datasets; ends:
    how many documents end inside the window (each gets one EOS token in the shards). A source no larger
    than ``budget_bytes`` is one window holding all of it (share 1).

    Windows are placed by byte offset over the concatenated files, so a file is sampled in proportion to
    its size: a window in a plain-text file reads the bytes at its offset (running on into the next file),
    not the file's head -- sampling only the heads, once per file, under-weighted large files (``mixopt
    plan`` estimated a folder of one large and many small text files 1.7x too low). In a jsonl file a
    window reads the whole lines that start in it; ``.json``/``.parquet`` files are read from the start.
    """
    keep = max(src.min_chars, 1)
    if src.hf is not None:
        ds = _load_hf(name, src.hf, src.hf_config, src.split)
        n, per = len(ds), max(1, budget_bytes // 256 // pieces)
        if src.text_field not in ds.column_names:
            raise _missing_field(name, _where(src), src.text_field, ds.column_names)
        if n == 0:
            return []
        if n <= pieces * per:  # small enough to read whole
            kept = [t for t in ds[src.text_field] if t and len(t) >= keep]
            return [(kept, 1.0, len(kept))]
        out = []
        for j in range(pieces):
            lo = n * j // pieces
            kept = [t for t in ds.select(range(lo, lo + per))[src.text_field] if t and len(t) >= keep]
            out.append((kept, per / n, len(kept)))
        return out
    files = resolve_files(name, src)
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)
    if total == 0:
        return []
    if total <= budget_bytes:
        docs = [d for d in iter_documents(name, src) if len(d) >= keep]
        return [(docs, 1.0, len(docs))]
    starts = list(itertools.accumulate(sizes, initial=0))
    per = max(1, budget_bytes // pieces)
    out = []
    seen: set[tuple[int, int]] = set()
    for j in range(pieces):
        offset = total * j // pieces
        end = min(total, offset + per)
        docs, span, ends = [], 0.0, 0
        while offset < end:
            i = bisect.bisect_right(starts, offset) - 1
            f, pos = files[i], offset - starts[i]
            fmt = file_format(f, src)
            if fmt == "text":
                with open(f, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read(end - offset)
                if sizes[i] >= keep:
                    docs.append(chunk.decode("utf-8", errors="ignore"))
                    ends += pos + len(chunk) == sizes[i]
                span += len(chunk)
                offset += max(len(chunk), 1)
                continue
            got, counted, consumed = _sample_records(name, f, fmt, pos, end - offset, src.text_field, i, seen)
            got = [d for d in got if len(d) >= keep]
            docs += got
            ends += len(got)
            span += counted
            offset += max(consumed, 1)
        out.append((docs, span / total, ends))
    return out


def _sample_records(name: str, f: Path, fmt: str, pos: int, budget: int, field: str, index: int,
                    seen: set[tuple[int, int]]) -> tuple[list[str], float, int]:
    """Documents of one record file from byte ``pos`` on: ``(docs, bytes they stand for, bytes consumed)``.

    jsonl: the whole lines that start in ``[pos, pos + budget)`` (a line may run past it). ``.json`` and
    parquet: records from the start of the file (about ``budget`` bytes of text, standing for their share
    of the file's records), and the window moves on to the next file. ``seen`` holds ``(file index, start
    byte)`` of what was read already, so windows never overlap."""
    size = f.stat().st_size
    if fmt == "jsonl":
        docs, span, skipped = [], 0, 0
        with open(f, "rb") as fh:
            fh.seek(pos)
            if pos:
                fh.seek(pos - 1)
                skipped = len(fh.readline()) - 1  # the rest of a line that started before the window
            while skipped + span < budget:
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
        return docs, span, skipped + span
    if (index, 0) in seen:
        return [], 0, size - pos
    seen.add((index, 0))
    docs, n = [], 0  # .json arrays and parquet: records from the start of the file
    for text in _iter_file(name, f, field, fmt):
        docs.append(text)
        n += len(text.encode("utf-8"))
        if n >= budget:
            break
    total = source_stats(name, DomainSource(path=str(f), text_field=field, format=fmt))["documents"]
    return docs, size * len(docs) / max(total, 1), size - pos
