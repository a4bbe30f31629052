"""Plain-PyTorch helper: per-sequence losses, accumulation, the sampler following the mixer, exact resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixopt.data import MixtureSampler
from mixopt.online import MixerError, OnlineMixing, make_mixer, per_sequence_loss

VOCAB = 64  # tiny_data's vocabulary (tests/online/conftest.py)


def test_per_sequence_loss_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    targets = torch.randint(0, 7, (3, 5), generator=g)
    targets[1, 3:] = -100
    loss, n = per_sequence_loss(logits, targets)
    assert n.tolist() == [5, 3, 5]
    for b in range(3):
        m = targets[b] != -100
        np.testing.assert_allclose(loss[b], F.cross_entropy(logits[b][m], targets[b][m]), rtol=1e-6)
    shifted, n2 = per_sequence_loss(logits, targets, shift=True)  # HF style: labels == input_ids
    np.testing.assert_allclose(shifted[0], F.cross_entropy(logits[0, :-1], targets[0, 1:]), rtol=1e-6)
    assert n2.tolist() == [4, 2, 4]


def test_observe_accumulates_token_weighted_sums_and_updates_every_n(tiny_data):
    sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=8, batch_size=4, seed=0)
    mixing = OnlineMixing(make_mixer("stratified", tiny_data.domains), sampler, update_every=2)
    mixing.observe(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 0, 2, 2]), torch.tensor([2, 2, 1, 3]))
    np.testing.assert_allclose(mixing._sum, [2 + 4, 0, 3 + 12])
    np.testing.assert_allclose(mixing._count, [4, 0, 4])
    assert mixing.step(1) is None  # not due yet
    assert mixing.step(2) is not None
    np.testing.assert_allclose(mixing._count, 0)
    with pytest.raises(MixerError, match="domain_ids must be in"):
        mixing.observe(torch.ones(2), torch.tensor([0, 3]))
    with pytest.raises(MixerError, match="same length"):
        mixing.observe(torch.ones(2), torch.tensor([0, 1, 2]))


def test_sampler_domains_must_match(tiny_data):
    sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=8, batch_size=4, seed=0)
    with pytest.raises(MixerError, match="differ"):
        OnlineMixing(make_mixer("odm", ["a", "b", "c"]), sampler)


def test_sampler_picks_up_new_weights(tiny_data):
    sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=8, batch_size=64, seed=0)
    mixing = OnlineMixing(make_mixer("odm", tiny_data.domains, alpha=0.0), sampler, update_every=1)
    for step in range(1, 40):
        _, ids = sampler.next_batch()
        # noise (id 2) has by far the highest loss: ODM chases it
        mixing.observe(torch.tensor([0.5, 1.0, 6.0])[ids], ids, torch.full_like(ids, 8))
        mixing.step(step)
    np.testing.assert_allclose(sampler.weights, mixing.weights)
    assert mixing.weights[2] > 0.7
    drawn = np.bincount(torch.cat([sampler.next_batch()[1] for _ in range(20)]).numpy(), minlength=3)
    assert drawn[2] / drawn.sum() > 0.65
    assert len(mixing.history) == 40 and mixing.history[-1][0] == 39


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, 16)
        self.out = torch.nn.Linear(16, VOCAB)

    def forward(self, x):
        return self.out(self.emb(x))


def _run(tiny_data, steps, *, resume_from=None, save_at=None):
    """Train with the default mixer; returns (batches' token sums, weights history, checkpoint)."""
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=16, batch_size=8, seed=1)
    mixing = OnlineMixing(make_mixer("default", tiny_data.domains, warmup=1), sampler, update_every=2)
    start, seen, ckpt = 1, [], None
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        opt.load_state_dict(resume_from["opt"])
        mixing.load_state_dict(json.loads(resume_from["mixing"]))
        start = resume_from["step"] + 1
    for step in range(start, steps + 1):
        tokens, ids = sampler.next_batch()
        seen.append(int(tokens.sum()))
        logits = model(tokens[:, :-1])
        loss, n = per_sequence_loss(logits, tokens[:, 1:])
        F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad()
        mixing.observe(loss, ids, n)
        mixing.step(step)
        if step == save_at:
            ckpt = {"model": {k: v.clone() for k, v in model.state_dict().items()},
                    "opt": copy.deepcopy(opt.state_dict()),
                    "mixing": json.dumps(mixing.state_dict()), "step": step}
    return seen, mixing.history, ckpt


def test_plain_loop_resume_gives_same_batches_and_weights(tiny_data):
    full_seen, full_hist, ckpt = _run(tiny_data, 14, save_at=7)
    assert len({tuple(w) for _, w in full_hist}) > 2  # the mixer did change the weights
    rest_seen, rest_hist, _ = _run(tiny_data, 14, resume_from=ckpt)
    assert rest_seen == full_seen[7:]
    assert rest_hist == full_hist


def test_dataset_schedules_weights_and_checkpoints_under_prefetch(tiny_data):
    """A loader that reads one batch ahead sees the same stream as one that does not, and a checkpoint
    taken while a batch is prefetched resumes the stream exactly."""

    def stream(prefetch, stop=None, resume=None):
        sampler = MixtureSampler(tiny_data, [1 / 3] * 3, seq_len=8, batch_size=16, seed=3)
        mixing = OnlineMixing(make_mixer("odm", tiny_data.domains, alpha=0.0), sampler, update_every=1)
        ds = mixing.make_dataset(delay=1)
        if resume is not None:
            mixing.load_state_dict(json.loads(resume))
        it = iter(ds)
        buf = [next(it) for _ in range(prefetch)]
        out = []
        for step in range(mixing.last_update_step + 1, 13):
            buf.append(next(it))
            tokens, ids = buf.pop(0)
            out.append((ids.tolist(), int(tokens.sum())))
            mixing.observe(torch.tensor([0.5, 1.0, 6.0])[ids], ids)
            mixing.step(step)
            if step == stop:
                return out, json.dumps(mixing.state_dict())
        return out, None

    no_pref, _ = stream(0)
    pref, _ = stream(1)
    assert pref == no_pref
    first, ckpt = stream(1, stop=6)
    rest, _ = stream(1, resume=ckpt)
    assert first + rest == no_pref
    assert np.mean([ids.count(2) / 16 for ids, _ in no_pref[-3:]]) > 0.6  # the weights really moved
