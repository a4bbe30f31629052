"""The offline demo corpus: deterministic, at least five domains of clearly different character."""

from __future__ import annotations

import zlib
from pathlib import Path

from mixopt.cli import main
from mixopt.config import load_job_config
from mixopt.data import build_demo_corpus, read_documents


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and "workspace" not in p.relative_to(root).parts}


def test_demo_job_is_valid_and_names_every_domain(demo_corpus):
    cfg = load_job_config(demo_corpus / "job.yaml")
    assert list(cfg.domains) == ["code", "prose", "arithmetic", "records", "lowent", "noise"]
    assert cfg.tokenizer.vocab_size == 2048
    assert (cfg.proxy.preset, cfg.proxy.tokens, cfg.proxy.seq_len, cfg.proxy.batch_size) == ("dense-tiny", 200_000, 128, 16)
    assert (cfg.search.strategy, cfg.search.n_init, cfg.budget.runs) == ("bo", 8, 16)
    assert cfg.workspace == str(demo_corpus / "workspace")
    for name, src in cfg.domains.items():
        docs = read_documents(name, src)
        size = sum(len(d.encode()) for d in docs)
        assert len(docs) >= 50 and 500_000 <= size <= 3_000_000, (name, len(docs), size)


def test_domains_differ_in_character(demo_corpus):
    cfg = load_job_config(demo_corpus / "job.yaml")
    text = {n: "".join(read_documents(n, s))[:200_000].encode() for n, s in cfg.domains.items()}
    ratio = {n: len(zlib.compress(t, 9)) / len(t) for n, t in text.items()}
    assert ratio["lowent"] < 0.05 < ratio["code"] < ratio["noise"]  # repetitive << real text << random
    assert ratio["noise"] > 0.7
    assert "def " in text["code"].decode() and "import " in text["code"].decode()
    assert text["arithmetic"].count(b" = ") > 1000
    assert b'"name": ' in text["records"] and b"id,name,city" in text["records"]


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "cli"), "--seed", "0", "--size-mb", "0.2"]) == 0
    assert "job.yaml" in capsys.readouterr().out
    build_demo_corpus(tmp_path / "again", seed=0, bytes_per_domain=200_000)
    build_demo_corpus(tmp_path / "other", seed=1, bytes_per_domain=200_000)
    cli, again, other = (_files(tmp_path / n) for n in ("cli", "again", "other"))
    assert len(cli) == 7 and cli == again  # six domains + job.yaml, byte for byte
    differ = sorted(Path(k).parent.name for k in cli if k != "job.yaml" and cli[k] != other[k])
    assert differ == ["arithmetic", "code", "lowent", "noise", "prose", "records"]
