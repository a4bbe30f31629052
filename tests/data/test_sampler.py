"""MixtureSampler: proportions, determinism, live weight changes, exact resume, epoch cap, DataLoader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mixopt.data import MixtureIterableDataset, MixtureSampler, prepare_data
from mixopt.errors import DataError


def _batches(sampler, n):
    return [tuple(t.clone() for t in sampler.next_batch()) for _ in range(n)]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


def test_batches_have_the_contract_shapes_and_are_real_windows(demo_prepared):
    s = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=32, batch_size=8, seed=0)
    tokens, dom = s.next_batch()
    assert tokens.shape == (8, 33) and tokens.dtype == torch.int64
    assert dom.shape == (8,) and dom.dtype == torch.int64
    for row, d in zip(tokens.numpy(), dom.tolist(), strict=True):
        train = np.asarray(demo_prepared.train[demo_prepared.domains[d]])
        starts = np.flatnonzero(train[: len(train) - 32] == row[0])
        assert any(np.array_equal(train[i : i + 33], row) for i in starts)


def test_empirical_domain_shares_follow_the_weights(demo_prepared):
    k = len(demo_prepared.domains)
    w = np.arange(1, k + 1, dtype=float)
    w[1] = 0.0
    w /= w.sum()
    s = MixtureSampler(demo_prepared, w, seq_len=16, batch_size=64, seed=3)
    ids = torch.cat([s.next_batch()[1] for _ in range(150)]).numpy()  # 9600 sequences
    shares = np.bincount(ids, minlength=k) / len(ids)
    assert shares[1] == 0.0
    np.testing.assert_allclose(shares, w, atol=0.02)


def test_same_seed_same_batches_other_seed_other_batches(demo_prepared):
    make = lambda seed: MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=16, batch_size=4, seed=seed)  # noqa: E731
    assert _same(_batches(make(1), 5), _batches(make(1), 5))
    assert not _same(_batches(make(1), 5), _batches(make(2), 5))


def test_set_weights_takes_effect_from_the_next_batch(demo_prepared):
    s = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=16, batch_size=32, seed=0)
    reference = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=16, batch_size=32, seed=0)
    assert _same(_batches(s, 2), _batches(reference, 2))
    target = demo_prepared.domains[-1]
    s.set_weights({target: 1.0})
    np.testing.assert_array_equal(s.weights, np.eye(len(demo_prepared.domains))[-1])
    for _ in range(3):
        assert set(s.next_batch()[1].tolist()) == {len(demo_prepared.domains) - 1}


def test_state_dict_resumes_exactly(demo_prepared):
    s = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=16, batch_size=8, seed=7)
    _batches(s, 3)
    s.set_weights([1.0] + [0.0] * (len(demo_prepared.domains) - 1))
    _batches(s, 1)
    s.set_weights(demo_prepared.prior())
    sd = json.loads(json.dumps(s.state_dict()))  # survives a JSON checkpoint
    expected = _batches(s, 6)
    resumed = MixtureSampler(demo_prepared, np.full(len(demo_prepared.domains), 1 / len(demo_prepared.domains)), seq_len=16, batch_size=8, seed=99)
    resumed.load_state_dict(sd)
    assert _same(_batches(resumed, 6), expected)
    assert resumed.epochs_consumed() == s.epochs_consumed()


def test_state_dict_from_another_shape_is_rejected(demo_prepared):
    sd = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=16, batch_size=8, seed=0).state_dict()
    other = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=32, batch_size=8, seed=0)
    with pytest.raises(DataError, match="seq_len=16"):
        other.load_state_dict(sd)


def test_epochs_consumed_counts_tokens_over_train_tokens(demo_prepared):
    s = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=16, batch_size=8, seed=0)
    ids = torch.cat([s.next_batch()[1] for _ in range(10)]).numpy()
    counts = np.bincount(ids, minlength=len(demo_prepared.domains))
    expected = counts * 16 / demo_prepared.train_tokens()
    np.testing.assert_allclose(list(s.epochs_consumed().values()), expected)


@pytest.fixture
def small_prepared(small_cfg):
    return prepare_data(small_cfg, progress=False)


def test_epoch_cap_warns_once_per_domain(small_prepared):
    only = small_prepared.domains[0]
    s = MixtureSampler(small_prepared, {only: 1.0}, seq_len=16, batch_size=16, seed=0, max_epochs=0.5)
    n_train = len(small_prepared.train[only])
    steps_to_cap = int(0.5 * n_train / (16 * 16)) + 1
    with pytest.warns(UserWarning, match=f"domain '{only}' passed max_epochs=0.5"):
        for _ in range(steps_to_cap):
            s.next_batch()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.next_batch()  # no second warning for the same domain
    assert s.epochs_consumed()[only] > 0.5


def test_epoch_cap_fail_raises_and_leaves_the_sampler_unchanged(small_prepared):
    only = small_prepared.domains[0]
    s = MixtureSampler(small_prepared, {only: 1.0}, seq_len=16, batch_size=16, seed=0, max_epochs=0.5,
                       on_epoch_cap="fail")
    with pytest.raises(DataError, match=f"domain '{only}' passed max_epochs=0.5"):  # noqa: PT012
        for _ in range(1000):
            before = s.state_dict()
            s.next_batch()
    assert s.state_dict() == before
    assert s.epochs_consumed()[only] <= 0.5


def test_sequence_longer_than_a_domain_names_it(small_prepared):
    shortest = min(small_prepared.domains, key=lambda d: len(small_prepared.train[d]))
    with pytest.raises(DataError, match=f"domain '{shortest}': train split has"):
        MixtureSampler(small_prepared, small_prepared.prior(), seq_len=len(small_prepared.train[shortest]),
                       batch_size=2, seed=0)


def test_dataloader_main_process_only(small_prepared):
    loader = torch.utils.data.DataLoader(
        MixtureIterableDataset(MixtureSampler(small_prepared, small_prepared.prior(), seq_len=8, batch_size=4, seed=0)),
        batch_size=None,
    )
    reference = MixtureSampler(small_prepared, small_prepared.prior(), seq_len=8, batch_size=4, seed=0)
    got = [b for _, b in zip(range(3), loader, strict=False)]
    assert _same(got, _batches(reference, 3))
    workers = torch.utils.data.DataLoader(
        MixtureIterableDataset(MixtureSampler(small_prepared, small_prepared.prior(), seq_len=8, batch_size=4, seed=0)),
        batch_size=None, num_workers=1,
    )
    with pytest.raises(DataError, match="num_workers=0"):
        next(iter(workers))


def test_the_stream_is_the_per_batch_recipe_across_plan_blocks_and_weight_changes(demo_prepared):
    """Planning K batches per RNG call serves the batches one rng.random(2B) draw per batch gives (the
    stream of every earlier version, so a seed keeps its batches), also across blocks and set_weights."""
    from numpy.lib.stride_tricks import sliding_window_view

    B, T = 100, 16  # 40 batches per planned block: 90 batches cross two block boundaries
    k = len(demo_prepared.domains)
    s = MixtureSampler(demo_prepared, demo_prepared.prior(), seq_len=T, batch_size=B, seed=7)
    windows = [sliding_window_view(np.asarray(demo_prepared.train[d]), T + 1) for d in demo_prepared.domains]
    rng, cdf = np.random.default_rng(7), np.cumsum(demo_prepared.prior())
    for i in range(90):
        if i == 55:  # mid-block
            w = np.eye(k)[1] * 0.6 + 0.4 / k
            s.set_weights(w)
            cdf = np.cumsum(w)
        cdf[-1] = 1.0
        u = rng.random(2 * B)
        dom = np.searchsorted(cdf, u[:B], side="right")
        starts = (u[B:] * np.array([len(x) for x in windows])[dom]).astype(np.int64)
        tokens, ids = s.next_batch()
        assert np.array_equal(ids.numpy(), dom)
        assert np.array_equal(tokens.numpy(), np.stack([windows[d][st] for d, st in zip(dom, starts, strict=True)]))
    assert s.state_dict()["rng_state"] == rng.bit_generator.state  # the state a per-batch sampler would save
