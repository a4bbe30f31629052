"""An offline, deterministic demo corpus: six domains of clearly different character.

Built only from what every Python install has, so it works on any machine without a network:

* ``code``: source files of the Python standard library (a seeded subset of the sorted file list);
* ``prose``: docstrings of standard-library modules, classes and functions (``ast.get_docstring``);
* ``arithmetic``: integer expressions with their answers (``(17 + 4) * 3 = 63``);
* ``records``: structured records, as JSON lines and CSV tables;
* ``lowent``: highly repetitive text (a few motifs repeated with rare variations): easy to learn;
* ``noise``: uniformly random characters: nothing to learn, loss cannot go below ``log(alphabet)``.

The same seed gives byte-identical files (on the same Python installation).

>>> build_demo_corpus("demo")  # doctest: +SKIP
{'code': PosixPath('demo/code'), 'prose': PosixPath('demo/prose'), ...}
"""

from __future__ import annotations

import ast
import json
import sysconfig
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from mixopt.config import JobConfig
from mixopt.data.shards import atomic_write_bytes

__all__ = ["DEMO_DOMAINS", "build_demo_corpus"]

_SKIP_PARTS = {"site-packages", "test", "tests", "idle_test", "lib2to3", "__pycache__"}
_MAX_FILE_BYTES = 60_000


@lru_cache(maxsize=1)
def _stdlib_files() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [f for f in root.rglob("*.py") if not (_SKIP_PARTS & set(f.relative_to(root).parts))]
    return tuple(sorted(files, key=lambda f: f.relative_to(root).as_posix()))


def _take(texts, budget: int) -> list[str]:
    out, used = [], 0
    for t in texts:
        if used >= budget:
            break
        out.append(t)
        used += len(t.encode("utf-8"))
    return out


def _code(rng: np.random.Generator, budget: int) -> list[str]:
    files = _stdlib_files()
    order = rng.permutation(len(files))
    texts = (files[i].read_text(encoding="utf-8", errors="replace") for i in order)
    return _take((t for t in texts if 200 <= len(t.encode("utf-8")) <= _MAX_FILE_BYTES), budget)


def _module_docstrings(path: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return ""
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) >= 40:
                parts.append(doc)
    return "\n\n".join(parts)


def _prose(rng: np.random.Generator, budget: int) -> list[str]:
    files = _stdlib_files()
    order = rng.permutation(len(files))
    return _take((t for t in (_module_docstrings(files[i]) for i in order) if len(t) >= 200), budget)


def _expr(rng: np.random.Generator, depth: int) -> str:
    if depth == 0 or (depth < 3 and rng.random() < 0.3):
        return str(int(rng.integers(0, 100)))
    op = "+-*"[int(rng.integers(0, 3))]
    left, right = _expr(rng, depth - 1), _expr(rng, depth - 1)
    return f"({left} {op} {right})" if depth < 3 else f"{left} {op} {right}"


def _arithmetic(rng: np.random.Generator, budget: int) -> list[str]:
    def docs():
        while True:
            lines = []
            for _ in range(int(rng.integers(8, 24))):
                e = _expr(rng, 3)
                lines.append(f"{e} = {eval(e)}")  # noqa: S307 - our own digits and + - * only
            yield "\n".join(lines) + "\n"

    return _take(docs(), budget)


_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken", "Margaret",
          "Dennis", "Hedy", "Tim", "Sophie", "Linus", "Guido", "Katherine", "Niklaus", "Shafi"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Perlman",
         "Thompson", "Hamilton", "Ritchie", "Lamarr", "Berners-Lee", "Wilson", "Torvalds", "Rossum", "Johnson"]
_CITY = ["Lisbon", "Nairobi", "Osaka", "Lima", "Oslo", "Perth", "Quito", "Dakar", "Hanoi", "Tunis", "Cork", "Pune"]
_ITEM = ["widget", "gadget", "sprocket", "gear", "bolt", "lever", "valve", "spring", "pulley", "flange"]


def _record(rng: np.random.Generator, i: int) -> dict:
    return {
        "id": int(rng.integers(10_000, 99_999)),
        "name": f"{_FIRST[int(rng.integers(len(_FIRST)))]} {_LAST[int(rng.integers(len(_LAST)))]}",
        "city": _CITY[int(rng.integers(len(_CITY)))],
        "date": f"20{int(rng.integers(10, 30))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
        "item": _ITEM[int(rng.integers(len(_ITEM)))],
        "qty": int(rng.integers(1, 50)),
        "price": round(float(rng.uniform(0.5, 500.0)), 2),
    }


def _records(rng: np.random.Generator, budget: int) -> list[str]:
    def docs():
        while True:
            recs = [_record(rng, i) for i in range(int(rng.integers(4, 16)))]
            if rng.random() < 0.5:
                yield "\n".join(json.dumps(r) for r in recs) + "\n"
            else:
                rows = [",".join(recs[0])] + [",".join(str(v) for v in r.values()) for r in recs]
                yield "\n".join(rows) + "\n"

    return _take(docs(), budget)


_MOTIFS = ["the cat sat on the mat. ", "abc abc abd abc. ", "one two three four. ", "la la la la la. ",
           "red green blue red green blue. ", "0 1 0 1 1 0. ", "tick tock tick tock. ", "to be or not to be. "]


def _lowent(rng: np.random.Generator, budget: int) -> list[str]:
    def docs():
        while True:
            motif = _MOTIFS[int(rng.integers(len(_MOTIFS)))]
            reps = [motif if rng.random() > 0.05 else _MOTIFS[int(rng.integers(len(_MOTIFS)))]
                    for _ in range(int(rng.integers(20, 80)))]
            yield "".join(reps).strip() + "\n"

    return _take(docs(), budget)


_NOISE_ALPHABET = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&*+-/<=>?@^_~ "))


def _noise(rng: np.random.Generator, budget: int) -> list[str]:
    def docs():
        while True:
            n = int(rng.integers(400, 2000))
            yield "".join(_NOISE_ALPHABET[rng.integers(0, len(_NOISE_ALPHABET), size=n)]) + "\n"

    return _take(docs(), budget)


DEMO_DOMAINS: dict[str, Callable[[np.random.Generator, int], list[str]]] = {
    "code": _code,
    "prose": _prose,
    "arithmetic": _arithmetic,
    "records": _records,
    "lowent": _lowent,
    "noise": _noise,
}


def build_demo_corpus(out_dir: str | Path, seed: int = 0, *, bytes_per_domain: int = 1_000_000) -> dict[str, Path]:
    """Write the demo corpus and its ``job.yaml`` under ``out_dir``; return ``{domain: source folder}``.

    Each domain is ``out_dir/<domain>/<domain>.jsonl`` (``{"text": ...}`` per line, about
    ``bytes_per_domain`` bytes of text). ``out_dir/job.yaml`` is a valid job over them (relative paths,
    workspace ``workspace``, a 2048-token BPE, CPU-tiny proxies, BO search with 16 runs).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for i, (name, make) in enumerate(DEMO_DOMAINS.items()):
        rng = np.random.default_rng([seed, i])
        docs = make(rng, bytes_per_domain)
        folder = out / name
        folder.mkdir(exist_ok=True)
        payload = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs)
        atomic_write_bytes(folder / f"{name}.jsonl", payload.encode("utf-8"))
        paths[name] = folder
    job = {
        "name": "demo",
        "workspace": "workspace",
        "seed": seed,
        "domains": {name: {"path": name} for name in DEMO_DOMAINS},
        "tokenizer": {"vocab_size": 2048, "sample_bytes_per_domain": 300_000},
        "data": {"val_tokens": 16_384, "max_epochs": 8.0, "on_epoch_cap": "warn"},
        "proxy": {"preset": "dense-tiny", "tokens": 200_000, "seq_len": 128, "batch_size": 16},
        "search": {"strategy": "bo", "n_init": 8},
        "budget": {"runs": 16},
    }
    JobConfig.model_validate(job)  # the file we write must load
    text = "# Demo job written by `mixopt demo-data` (build_demo_corpus).\n" + yaml.safe_dump(job, sort_keys=False)
    atomic_write_bytes(out / "job.yaml", text.encode("utf-8"))
    return paths
