"""prepare_data: tokenizer caching, shard round trip, idempotence, atomicity, dtype, splits."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from mixopt.config import TokenizerSettings, load_job_config
from mixopt.data import load_prepared, prepare_data, read_documents
from mixopt.data.tokenizer import EOS_TOKEN, obtain_tokenizer, sample_documents
from mixopt.errors import ConfigError, DataError


def _shard_stats(data_dir):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted((data_dir / "shards").glob("*"))}


def test_tokenizer_is_cached_by_sample_and_settings(tmp_path, sentences):
    samples = {"a": sample_documents(sentences(0, 50), 5_000), "b": sample_documents(sentences(1, 50), 5_000)}
    settings = TokenizerSettings(vocab_size=300, sample_bytes_per_domain=5_000)
    path, key, trained = obtain_tokenizer(settings, samples, tmp_path)
    assert trained and path.is_file()
    mtime = path.stat().st_mtime_ns
    path2, key2, trained2 = obtain_tokenizer(settings, samples, tmp_path)
    assert (path2, key2, trained2) == (path, key, False)
    assert path.stat().st_mtime_ns == mtime
    _, key3, trained3 = obtain_tokenizer(TokenizerSettings(vocab_size=320, sample_bytes_per_domain=5_000), samples, tmp_path)
    assert trained3 and key3 != key
    assert len(list(tmp_path.iterdir())) == 2


def test_shards_decode_back_to_the_documents(small_cfg):
    data = prepare_data(small_cfg, progress=False)
    assert data.domains == ["greek", "digits", "animals"]
    assert data.dtype == np.uint16
    for name, src in small_cfg.domains.items():
        tokens = np.concatenate([data.train[name], data.val[name]])
        text = data.decode(tokens)
        decoded = [d for d in text.split(EOS_TOKEN) if d]
        assert sorted(decoded) == sorted(read_documents(name, src))
        assert len(data.val[name]) >= small_cfg.data.val_tokens
        assert tokens[-1] == data.eos_id  # the split is at document boundaries
        assert data.train[name][-1] == data.eos_id
    np.testing.assert_allclose(data.prior(), data.train_tokens() / data.train_tokens().sum())
    assert data.prior().sum() == pytest.approx(1.0)


def test_second_prepare_does_no_work(small_cfg):
    data = prepare_data(small_cfg, progress=False)
    assert set(data.work.values()) == {"prepared"}
    before = _shard_stats(data.data_dir)
    manifest = (data.data_dir / "manifest.json").read_text()
    again = prepare_data(small_cfg, progress=False)
    assert set(again.work.values()) == {"up to date"}
    assert _shard_stats(data.data_dir) == before
    assert (data.data_dir / "manifest.json").read_text() == manifest
    assert len(list((data.data_dir / "tokenizers").iterdir())) == 1


def test_changed_split_setting_reuses_tokenizer_but_rewrites_shards(small_cfg):
    prepare_data(small_cfg, progress=False)
    small_cfg.data.val_tokens = 300
    data = prepare_data(small_cfg, progress=False)
    assert set(data.work.values()) == {"prepared"}
    assert len(list((data.data_dir / "tokenizers").iterdir())) == 1
    assert all(len(v) >= 300 for v in data.val.values())


def test_fixed_tokenizer_only_changed_domain_is_redone(small_cfg, small_corpus, write_jsonl, sentences, tmp_path):
    tok_path = tmp_path / "my_tokenizer.json"
    tok_path.write_bytes(prepare_data(small_cfg, progress=False).tokenizer_path.read_bytes())
    small_cfg.tokenizer.path = str(tok_path)
    prepare_data(small_cfg, progress=False)
    write_jsonl(small_corpus["greek"], sentences(5, 70))
    data = prepare_data(small_cfg, progress=False)
    assert data.work == {"greek": "prepared", "digits": "up to date", "animals": "up to date"}
    # a different tokenizer file at the same path invalidates every shard
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    tok.add_tokens(["alphabeta"])
    tok.save(str(tok_path))
    data = prepare_data(small_cfg, progress=False)
    assert set(data.work.values()) == {"prepared"} and data.vocab_size == 301


def test_failure_midway_leaves_no_half_shard_and_no_manifest_claim(small_cfg, small_corpus):
    small_cfg.tokenizer.path = str(prepare_data(small_cfg, progress=False).tokenizer_path)
    small_cfg.data.val_tokens = 200  # every domain needs work again
    ws = small_cfg.data_dir  # the data folder of this configuration (sources, tokenizer, val_tokens)
    good = small_corpus["animals"].read_text()
    small_corpus["animals"].write_text(good + '{"body": "unterminated\n')  # the last domain fails
    with pytest.raises(DataError, match=r"'animals'.*animals.jsonl:\d+"):
        prepare_data(small_cfg, progress=False)
    assert not list(ws.rglob("*.tmp-*"))
    manifest = json.loads((ws / "manifest.json").read_text())
    assert set(manifest["shards"]) == {"greek", "digits"}
    with pytest.raises(DataError, match="'animals' is not prepared"):
        load_prepared(ws)
    small_corpus["animals"].write_text(good)
    data = prepare_data(small_cfg, progress=False)
    assert data.work == {"greek": "up to date", "digits": "up to date", "animals": "prepared"}


def test_interrupted_write_leaves_no_file(small_cfg, monkeypatch):
    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(small_cfg, progress=False)
    ws = small_cfg.data_dir
    assert not list(ws.rglob("*.tmp-*"))
    assert not list((ws / "shards").glob("*.bin"))
    with pytest.raises(DataError, match="no prepared data"):
        load_prepared(ws)


def test_vocab_above_uint16_switches_shards_to_uint32(small_cfg, tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab |= {f"<filler{i}>": i for i in range(len(vocab), 70_000)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOS_TOKEN])  # id 70000: does not fit in uint16
    tok.save(str(tmp_path / "big.json"))
    small_cfg.tokenizer.path = str(tmp_path / "big.json")
    data = prepare_data(small_cfg, progress=False)
    assert data.vocab_size == 70_001 and data.dtype == np.uint32 and data.eos_id == 70_000
    assert (data.train["greek"] == 70_000).sum() > 0
    first_doc = data.decode(data.train["greek"]).split(EOS_TOKEN)[0]
    assert first_doc in read_documents("greek", small_cfg.domains["greek"])


def test_too_small_domain_for_val_split_is_an_error(small_cfg):
    small_cfg.data.val_tokens = 100_000
    with pytest.raises(DataError, match="domain 'greek': only \\d+ tokens"):
        prepare_data(small_cfg, progress=False)
    assert not list(small_cfg.data_dir.rglob("*.tmp-*"))
    assert not list((small_cfg.data_dir / "shards").glob("*.bin"))


def test_missing_source_fails_before_anything_is_written(small_cfg, tmp_path):
    small_cfg.domains["digits"].path = str(tmp_path / "nope")
    with pytest.raises(DataError, match="domain 'digits': source .*nope does not exist"):
        prepare_data(small_cfg, progress=False)
    assert not (small_cfg.data_dir / "manifest.json").exists()


def test_val_sequences_are_fixed_non_overlapping_windows(small_cfg):
    data = prepare_data(small_cfg, progress=False)
    seqs = data.val_sequences(16, max_tokens=64)
    for name in data.domains:
        s = seqs[name]
        assert s.shape == (64 // 17, 17) and str(s.dtype) == "torch.int64"
        np.testing.assert_array_equal(s.numpy().reshape(-1), np.asarray(data.val[name][: s.numel()]))
    again = data.val_sequences(16, max_tokens=64)
    assert all((again[n] == seqs[n]).all() for n in data.domains)
    everything = data.val_sequences(16)
    assert all(len(everything[n]) == len(data.val[n]) // 17 for n in data.domains)


def test_val_sequences_longer_than_split_names_the_domain(small_cfg):
    data = prepare_data(small_cfg, progress=False)
    shortest = min(data.domains, key=lambda d: len(data.val[d]))
    with pytest.raises(DataError, match=f"domain '{shortest}': validation split has"):
        data.val_sequences(len(data.val[shortest]), max_tokens=None)


def test_prepared_data_pickles_as_a_reference(small_cfg):
    data = prepare_data(small_cfg, progress=False)
    blob = pickle.dumps(data)
    assert len(blob) < 2_000
    back = pickle.loads(blob)
    assert back.domains == data.domains
    np.testing.assert_array_equal(back.train["greek"], data.train["greek"])


def test_duplicate_domain_names_in_yaml_are_rejected(tmp_path):
    (tmp_path / "job.yaml").write_text("name: x\ndomains:\n  code: a\n  prose: b\n  code: c\n")
    with pytest.raises(ConfigError, match="duplicate key 'code' at line 5"):
        load_job_config(tmp_path / "job.yaml")


def test_split_point_takes_whole_trailing_documents_or_cuts_a_huge_one():
    from mixopt.data.shards import split_point

    assert split_point(np.array([100, 100, 100, 100]), 150, "d") == (200, 2)  # two whole docs >= 150 tokens
    assert split_point(np.array([5000]), 300, "d") == (4700, 1)  # one long doc: cut the last 300 tokens
    with pytest.raises(DataError, match="domain 'd': only 500 tokens"):
        split_point(np.array([250, 250]), 300, "d")


def test_jobs_with_different_sources_in_one_workspace_keep_their_own_shards(small_cfg, small_corpus, write_jsonl,
                                                                              sentences, tmp_path):
    from mixopt.search.plan import plan_job

    first = prepare_data(small_cfg, progress=False)
    counts = {d: len(first.train[d]) for d in first.domains}
    before = _shard_stats(first.data_dir)
    other = small_cfg.model_copy(deep=True)  # a second job: same workspace, one different domain source
    other.domains["greek"].path = str(write_jsonl(tmp_path / "src" / "greek2.jsonl", sentences(9, 90)))
    assert other.data_dir != small_cfg.data_dir and other.data_dir.parent == small_cfg.data_dir.parent
    second = prepare_data(other, progress=False)
    assert set(second.work.values()) == {"prepared"}
    assert _shard_stats(first.data_dir) == before  # the first job's shards were not touched
    plan = plan_job(small_cfg)  # and its plan still finds them, with the same counts
    assert plan["prepared"] and {r["domain"]: r["train_tokens"] for r in plan["domains"]} == counts
    assert prepare_data(small_cfg, progress=False).work == dict.fromkeys(counts, "up to date")
