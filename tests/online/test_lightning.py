"""Lightning Callback: a tiny LM trained from the real sampler; weights change, checkpoint, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

L = pytest.importorskip("lightning")

from mixopt.data import MixtureSampler  # noqa: E402
from mixopt.online import OnlineMixing, make_mixer, per_sequence_loss  # noqa: E402
from mixopt.online.lightning import MixingCallback, mixing_dataloader  # noqa: E402


class TinyLM(L.LightningModule):
    def __init__(self, mixing: OnlineMixing, vocab: int):
        super().__init__()
        self.mixing = mixing
        self.emb = torch.nn.Embedding(vocab, 16)
        self.out = torch.nn.Linear(16, vocab)

    def training_step(self, batch, batch_idx):
        tokens, domain_ids = batch  # (B, T+1), (B,)
        logits = self.out(self.emb(tokens[:, :-1]))  # (B, T, V)
        seq_loss, n_tok = per_sequence_loss(logits, tokens[:, 1:])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        return {"loss": loss, "seq_loss": seq_loss, "domain_ids": domain_ids, "token_counts": n_tok}

    def train_dataloader(self):
        return mixing_dataloader(self.mixing)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def _fit(tiny_data, ckpt_dir, ckpt_path=None):
    torch.manual_seed(0)
    sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=16, batch_size=8, seed=0)
    mixing = OnlineMixing(make_mixer("default", tiny_data.domains, warmup=1, cooldown=0.0), sampler,
                          update_every=1)
    module = TinyLM(mixing, tiny_data.vocab_size)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=3, save_top_k=-1)
    trainer = L.Trainer(max_steps=6, accumulate_grad_batches=2, accelerator="cpu", devices=1, logger=False,
                        callbacks=[MixingCallback(mixing), ckpt], enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, mixing, sampler


def test_lightning_callback_changes_weights_and_resumes_exactly(tiny_data, tmp_path):
    module, mixing, sampler = _fit(tiny_data, tmp_path)
    assert mixing.batches_observed == 12  # 6 optimiser steps x 2 accumulated batches
    assert [s for s, _ in mixing.history] == list(range(7))
    assert len({tuple(np.round(w, 6)) for _, w in mixing.history}) > 2
    assert mixing.mixer.total_steps == 6  # the trainer told the mixer the run's length (for its cooldown)
    ckpts = sorted(tmp_path.glob("*step=3*.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], weights_only=False)["callbacks"]["MixingCallback"]
    assert state["batches_observed"] == 6 and state["mixer"]["n_updates"] == 3

    resumed, mixing2, sampler2 = _fit(tiny_data, tmp_path / "again", ckpt_path=str(ckpts[0]))
    assert mixing2.history == mixing.history
    assert sampler2.state_dict() == sampler.state_dict()
    for a, b in zip(resumed.parameters(), module.parameters(), strict=True):
        torch.testing.assert_close(a, b)
