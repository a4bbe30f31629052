"""The data verbs of the CLI: prepare (twice), plan (before and after), one-line errors."""

from __future__ import annotations

import yaml

from mixopt.cli import main


def _write_job(tmp_path, small_corpus):
    job = {
        "name": "cli",
        "workspace": "ws",
        "domains": {"greek": str(small_corpus["greek"]), "digits": str(small_corpus["digits"]),
                    "animals": {"path": str(small_corpus["animals"]), "text_field": "body"}},
        "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
        "data": {"val_tokens": 256},
        "proxy": {"tokens": 10_000, "seq_len": 32},
        "budget": {"runs": 5},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    return tmp_path / "job.yaml"


def test_plan_prepare_prepare_plan(tmp_path, small_corpus, capsys):
    job = _write_job(tmp_path, small_corpus)
    assert main(["plan", str(job)]) == 0
    out = capsys.readouterr().out
    assert "not prepared" in out and "exact" in out and "(shards)" not in out  # a small corpus: counted, not guessed
    assert all(d in out for d in ("greek", "digits", "animals"))
    assert "budget: runs 5" in out and "estimated cost" in out

    assert main(["prepare", str(job), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("prepared") >= 3 and "up to date" not in out

    assert main(["prepare", str(job), "-q"]) == 0
    out = capsys.readouterr().out
    assert "up to date (nothing to do)" in out

    assert main(["plan", str(job)]) == 0
    out = capsys.readouterr().out
    assert "data: prepared" in out and out.count("exact (shards)") == 3 and "~" not in out


def test_bad_source_is_a_one_line_error(tmp_path, small_corpus, capsys):
    job = _write_job(tmp_path, small_corpus)
    job.write_text(job.read_text().replace(str(small_corpus["digits"]), str(tmp_path / "missing")))
    assert main(["prepare", str(job), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: domain 'digits'") and "missing" in err and "\n" not in err
    assert not (tmp_path / "ws" / "data" / "manifest.json").exists()
