"""`mixopt plan`'s token counts (mixopt/search/plan.py; here for the data fixtures): exact where they are
cheap (they equal the shards prepare writes), and an estimate labelled with its error elsewhere -- one
that large files do not bias."""

from __future__ import annotations

import random

import mixopt.search.plan as plan_mod
from mixopt.data import prepare_data
from mixopt.data.tokenizer import train_tokenizer
from mixopt.search.plan import count_tokens, estimate_tokens, format_plan, plan_job


def test_plan_counts_a_small_corpus_exactly_before_prepare(small_cfg):
    plan = plan_job(small_cfg)  # nothing prepared: the tokenizer is trained in memory, nothing is written
    assert not small_cfg.data_dir.exists()
    assert [r["count"] for r in plan["domains"]] == ["exact"] * 3 and not plan["prepared"]
    data = prepare_data(small_cfg, progress=False)
    for r in plan["domains"]:
        entry = data.manifest["shards"][r["domain"]]
        assert (r["documents"], r["tokens"], r["train_tokens"]) == (
            entry["documents"], entry["tokens"], entry["train_tokens"])
        assert r["train_tokens"] == len(data.train[r["domain"]])
    again = plan_job(small_cfg)
    assert [r["count"] for r in again["domains"]] == ["exact (shards)"] * 3 and again["prepared"]


def test_plan_labels_estimates_with_their_error(small_cfg, monkeypatch):
    monkeypatch.setattr(plan_mod, "EXACT_BYTES", 100)  # every domain is "too large" to tokenise in full
    plan = plan_job(small_cfg)
    for r in plan["domains"]:
        assert r["count"].startswith("estimate (±") and r["count"].endswith("%)") and not r["exact"]
        assert r["error"] > 0
    text = format_plan(plan)
    assert "~" in text and "estimate (±" in text


def test_estimate_of_one_large_and_many_small_text_files_is_not_biased(tmp_path, make_cfg):
    rng = random.Random(0)
    folder = tmp_path / "manual"
    folder.mkdir()
    dense = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(300_000))
    (folder / "big.txt").write_text(dense)  # about one token per byte
    phrase = "the cat sat on the mat. "
    for i in range(100):  # a phrase the tokenizer knows: few tokens per byte
        (folder / f"page{i:03d}.txt").write_text(phrase * rng.randint(40, 80))
    other = tmp_path / "other.txt"
    other.write_text(phrase * 100)
    cfg = make_cfg(tmp_path / "ws", {"manual": {"path": str(folder)}, "other": {"path": str(other)}})
    tok = train_tokenizer([phrase * 200], 300)
    exact = count_tokens(cfg, "manual", tok)["tokens"]
    est, rel = estimate_tokens(cfg, ["manual"], tok)["manual"]
    # reading each file's head once (the old sampler) counted about two thirds of the true tokens here
    assert abs(est / exact - 1) < max(rel, 0.05), (est, exact, rel)


def test_hf_dataset_domain_is_estimated_from_windows_across_it(tmp_path, make_cfg, write_jsonl, sentences):
    # an HF dataset is never tokenised in full by plan: first 1,000 short rows, then 1,000 long ones
    write_jsonl(tmp_path / "hf" / "train.jsonl", sentences(0, 1000, words_per_doc=5) + sentences(1, 1000, 80))
    write_jsonl(tmp_path / "local.jsonl", sentences(2, 200))
    cfg = make_cfg(tmp_path / "ws", {"hub": {"hf": str(tmp_path / "hf")}, "local": {"path": str(tmp_path / "local.jsonl")}})
    tok = train_tokenizer(sentences(3, 200), 300)
    est, rel = estimate_tokens(cfg, ["hub"], tok)["hub"]
    exact = sum(len(e.ids) + 1 for e in tok.encode_batch_fast(sentences(0, 1000, 5) + sentences(1, 1000, 80)))
    assert abs(est / exact - 1) < max(rel, 0.05), (est, exact, rel)  # the first rows alone: ~1/8 of it
    row = {r["domain"]: r for r in plan_job(cfg)["domains"]}["hub"]
    assert row["count"].startswith("estimate (±")
