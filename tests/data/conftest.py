"""Helpers for the data-layer tests: tiny corpora and job configs in a temporary folder.

The helpers are handed to tests as fixtures (``write_jsonl``, ``make_cfg``, ``sentences``) because the
test folders are not packages.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mixopt.config import JobConfig

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"]


def sentences(seed: int, n_docs: int, words_per_doc: int = 60, vocab=WORDS) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocab) for _ in range(words_per_doc)) + "." for _ in range(n_docs)]


def write_jsonl(path: Path, docs: list[str], field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs)))
    return path


def make_cfg(workspace: Path, domains: dict, **sections) -> JobConfig:
    """A JobConfig with a small tokenizer and val split, suitable for corpora of a few thousand tokens."""
    raw = {
        "name": "t",
        "workspace": str(workspace),
        "domains": domains,
        "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
        "data": {"val_tokens": 256},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return JobConfig.model_validate(raw)


@pytest.fixture(name="write_jsonl")
def _write_jsonl_fixture():
    return write_jsonl


@pytest.fixture(name="make_cfg")
def _make_cfg_fixture():
    return make_cfg


@pytest.fixture(name="sentences")
def _sentences_fixture():
    return sentences


@pytest.fixture
def small_corpus(tmp_path) -> dict[str, Path]:
    """Three small domains (jsonl, text files, jsonl with another field)."""
    greek = write_jsonl(tmp_path / "src" / "greek.jsonl", sentences(0, 80))
    digits = tmp_path / "src" / "digits"
    digits.mkdir(parents=True)
    for i, d in enumerate(sentences(1, 40, vocab=[str(x) for x in range(10)])):
        (digits / f"doc{i:03d}.txt").write_text(d)
    animals = write_jsonl(tmp_path / "src" / "animals.jsonl",
                          sentences(2, 80, vocab=["cat", "dog", "emu", "fox", "gnu", "hen", "ibis", "jay"]), field="body")
    return {"greek": greek, "digits": digits, "animals": animals}


@pytest.fixture
def small_cfg(tmp_path, small_corpus) -> JobConfig:
    return make_cfg(tmp_path / "ws", {
        "greek": {"path": str(small_corpus["greek"])},
        "digits": {"path": str(small_corpus["digits"])},
        "animals": {"path": str(small_corpus["animals"]), "text_field": "body"},
    })
