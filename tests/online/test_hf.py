"""HF Trainer wiring: a tiny GPT-2 (built from config, nothing downloaded) trained from the real sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from mixopt.data import MixtureSampler  # noqa: E402
from mixopt.online import OnlineMixing, make_mixer  # noqa: E402
from mixopt.online.hf import MixoptTrainer  # noqa: E402


def _trainer(tiny_data, out_dir, max_steps=6):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=tiny_data.vocab_size,
                                  n_positions=32, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0,
                                  embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg)
    sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=16, batch_size=4, seed=0)
    mixing = OnlineMixing(make_mixer("default", tiny_data.domains, warmup=1, cooldown=0.0), sampler,
                          update_every=1)
    args = transformers.TrainingArguments(
        output_dir=str(out_dir), max_steps=max_steps, gradient_accumulation_steps=2, learning_rate=5e-3,
        save_strategy="steps", save_steps=3, logging_steps=100, report_to=[], use_cpu=True, seed=0,
        disable_tqdm=True, lr_scheduler_type="constant",
    )
    return MixoptTrainer(model=model, args=args, mixing=mixing), mixing, sampler


def test_trainer_updates_weights_checkpoints_and_resumes_exactly(tiny_data, tmp_path):
    trainer, mixing, sampler = _trainer(tiny_data, tmp_path)
    trainer.train()
    assert mixing.batches_observed == 12  # 6 optimiser steps x 2 accumulated micro-batches
    assert [s for s, _ in mixing.history] == list(range(7))
    assert len({tuple(np.round(w, 6)) for _, w in mixing.history}) > 2  # weights changed during training
    assert mixing.mixer.total_steps == 6  # the trainer told the mixer the run's length (for its cooldown)
    # An update's weights are scheduled from the batch after next (prefetch-safe): the last batch drawn
    # used the weights of the update before the last one.
    np.testing.assert_allclose(sampler.weights, mixing.history[-2][1], atol=1e-12)
    saved = json.loads((tmp_path / "checkpoint-3" / "mixopt_online_rank0.json").read_text())
    assert saved["batches_observed"] == 6 and saved["mixer"]["n_updates"] == 3

    # A fresh model, sampler and mixer resumed from step 3 end exactly where the uninterrupted run did.
    resumed, mixing2, sampler2 = _trainer(tiny_data, tmp_path)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    assert mixing2.history == mixing.history
    assert sampler2.state_dict() == sampler.state_dict()
    for a, b in zip(resumed.model.parameters(), trainer.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
