"""Downstream evaluation tasks on a trained proxy: jsonl items scored by log-likelihood, a user entry
point, and one-line errors for bad tasks."""

from __future__ import annotations

import json
import random

import pytest

from mixopt.errors import ConfigError, DataError
from mixopt.proxies import ProxyConfig, TrainSettings, train_proxy
from mixopt.proxies.evals import load_entry, load_items


def _arithmetic_items(demo_corpus, path, n=24, seed=0):
    """Multiple-choice items whose right answer continues a line of the demo `arithmetic` domain
    (``(56 * 19) + 7 =`` -> `` 1071``) and whose distractors are words of the `prose` domain."""
    rng = random.Random(seed)
    lines = [ln for rec in (demo_corpus / "arithmetic" / "arithmetic.jsonl").read_text().splitlines()[-40:]
             for ln in json.loads(rec)["text"].splitlines() if " = " in ln]
    words = " ".join(json.loads(rec)["text"] for rec in
                     (demo_corpus / "prose" / "prose.jsonl").read_text().splitlines()[:20]).split()
    with open(path, "w") as f:
        for line in rng.sample(lines, n):
            prompt, answer = line.rsplit(" = ", 1)
            choices = [" " + answer] + [" " + " ".join(rng.sample(words, 2)) for _ in range(2)]
            order = rng.sample(range(3), 3)
            f.write(json.dumps({"prompt": prompt + " =", "choices": [choices[i] for i in order],
                                "answer": order.index(0)}) + "\n")
    return path


def test_multiple_choice_task_rewards_the_proxy_trained_on_its_domain(demo_corpus, demo_prepared, tmp_path):
    items = _arithmetic_items(demo_corpus, tmp_path / "arith.jsonl")
    completion = tmp_path / "arith_completion.jsonl"
    completion.write_text("".join(json.dumps({"prompt": r["prompt"], "completion": r["choices"][r["answer"]]}) + "\n"
                                  for r in map(json.loads, items.read_text().splitlines())))
    evals = ({"name": "arith", "path": str(items), "kind": "multiple_choice"},
             {"name": "arith_c", "path": str(completion), "kind": "completion"})
    settings = TrainSettings(seq_len=64, batch_size=16, eval_points=2, eval_tokens=1024, evals=evals)
    rest = [d for d in demo_prepared.domains if d != "arithmetic"]
    runs = {}
    for w in (0.6, 0.01):
        mix = {"arithmetic": w} | {d: (1 - w) / len(rest) for d in rest}
        runs[w] = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, mix, tokens=40_000, seed=0,
                              settings=settings, threads=1)
    hi, lo = runs[0.6].metrics, runs[0.01].metrics
    assert runs[0.6].ok and runs[0.01].ok
    assert set(hi) == {"eval/arith/accuracy", "eval/arith/accuracy_norm", "eval/arith/norm_nll",
                       "eval/arith_c/accuracy", "eval/arith_c/norm_nll"}
    # per token, the arithmetic-trained proxy picks the arithmetic answer (chance: 1/3); the other does not
    assert hi["eval/arith/accuracy_norm"] > 0.8 > lo["eval/arith/accuracy_norm"] + 0.3
    assert hi["eval/arith/accuracy"] > 1 / 3 and hi["eval/arith/norm_nll"] < lo["eval/arith/norm_nll"]
    assert hi["eval/arith_c/norm_nll"] == pytest.approx(hi["eval/arith/norm_nll"])  # the same tokens scored
    assert all(0 <= hi[k] <= 1 for k in hi if k.endswith("accuracy"))


def test_entry_point_gets_the_model_and_tokenizer(demo_prepared, tmp_path, monkeypatch):
    (tmp_path / "my_evals.py").write_text(
        "def score(model, tokenizer):\n"
        "    return {'vocab': tokenizer.get_vocab_size(), 'params': sum(p.numel() for p in model.parameters()),\n"
        "            'training': float(model.training)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = TrainSettings(seq_len=32, batch_size=8, eval_points=1, eval_tokens=256,
                             evals=({"name": "mine", "entry": "my_evals:score"},))
    uniform = dict.fromkeys(demo_prepared.domains, 1 / len(demo_prepared.domains))
    rec = train_proxy(ProxyConfig.preset("dense-tiny"), demo_prepared, uniform, tokens=2048, seed=0, settings=settings, threads=1)
    assert rec.ok, rec.reason
    assert rec.metrics == {"eval/mine/vocab": demo_prepared.vocab_size, "eval/mine/params": rec.n_params,
                           "eval/mine/training": 0.0}


def test_bad_tasks_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^eval entry 'no_such_module_x:f': cannot import 'no_such_module_x'"):
        load_entry("no_such_module_x:f")
    with pytest.raises(ConfigError, match=r"^eval entry 'json:no_such_fn': module 'json' has no function"):
        load_entry("json:no_such_fn")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "choices": ["b", "c"], "answer": 0}\n{"prompt": "a", "choices": ["b"], "answer": 0}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: 'choices' must be a list of 2 or more"):
        load_items(bad, "multiple_choice")
