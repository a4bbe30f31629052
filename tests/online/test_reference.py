"""Reference curves (search-informed mixing): the forms accepted, and that a lagging domain is rewarded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixopt.online import MixerError, make_mixer
from mixopt.online.reference import DEFAULT_SHAPE, load_reference


def test_power_law_and_flat_forms():
    ref = load_reference({"a": (1.0, 100.0, 0.5), "b": 2.5}, ["a", "b", "c"])
    np.testing.assert_allclose(ref.loss(10_000)[:2], [2.0, 2.5])
    assert np.isnan(ref.loss(10_000)[2])  # no target for c
    np.testing.assert_allclose(ref.lag([2.5, 2.0, 9.0], 10_000), [0.5, -0.5, 0.0])


def _proposal(tmp_path, targets, tokens=1_000_000):
    path = tmp_path / "proposal.json"
    body = {"weights": {"a": 0.5, "b": 0.5}, "predicted_targets": targets,
            "context": {"fidelity": {"preset": "dense-tiny", "tokens": tokens}}}
    path.write_text(json.dumps(body))
    return path


def test_proposal_targets_are_end_points_of_a_default_shape(tmp_path):
    ref = load_reference(_proposal(tmp_path, {"loss/a": 2.0, "b": 3.0}), ["a", "b"])
    ref.calibrate(np.array([5.0, 3.5]), 10_000)  # the first losses the mixer sees, at 10k tokens
    np.testing.assert_allclose(ref.loss(10_000), [5.0, 3.5])  # every domain starts on its curve ...
    np.testing.assert_allclose(ref.loss(1_000_000), [2.0, 3.0])  # ... and ends on its target
    np.testing.assert_allclose(ref.beta, DEFAULT_SHAPE)
    ref.calibrate(np.array([9.0, 9.0]), 20_000)  # calibrated once only
    np.testing.assert_allclose(ref.loss(1_000_000), [2.0, 3.0])
    later = load_reference(_proposal(tmp_path, {"a": 2.0}), ["a", "b"], total_tokens=4_000_000)
    later.calibrate(np.array([5.0, 4.0]), 10_000)
    np.testing.assert_allclose(later.loss(4_000_000)[0], 2.0)  # reference_tokens overrides the proposal's


@pytest.mark.parametrize("bad, match", [
    ({"zzz": 1.0}, "unknown domain"),
    ({"a": (1.0, -2.0, 0.5)}, "B, beta >= 0"),
    ({"a": (1.0, 2.0)}, "expected a loss or"),
    ([1.0, 2.0], "expected"),
])
def test_bad_reference_is_a_one_line_error(bad, match):
    with pytest.raises(MixerError, match=match) as e:
        make_mixer("default", ["a", "b"], reference=bad)
    assert "\n" not in str(e.value)


def test_proposal_without_targets_or_tokens_is_a_one_line_error(tmp_path):
    with pytest.raises(MixerError, match="no predicted_targets"):
        load_reference(_proposal(tmp_path, None), ["a", "b"])
    with pytest.raises(MixerError, match="reference_tokens"):
        load_reference(_proposal(tmp_path, {"a": 2.0}, tokens=None), ["a", "b"])
    with pytest.raises(MixerError, match="names a domain"):
        load_reference(_proposal(tmp_path, {"zzz": 2.0}), ["a", "b"])
    with pytest.raises(MixerError, match="cannot read"):
        load_reference(tmp_path / "missing.json", ["a", "b"])


@pytest.mark.parametrize("name", ["progress", "ado", "reducible"])
def test_reference_rewards_the_domain_that_lags_its_curve(name):
    # Both domains learn identically, but b's reference curve says it should be 0.3 nats lower by now.
    ref = {"a": (2.0, 200.0, 0.5), "b": (1.7, 200.0, 0.5)}
    plain = make_mixer(name, ["a", "b"], warmup=0)
    guided = make_mixer(name, ["a", "b"], warmup=0, reference=ref)
    for t in range(1, 40):
        n = 1000.0 * t
        loss = 2.0 + 200.0 * n**-0.5  # exactly a's curve
        for m in (plain, guided):
            m.update(t, [loss * 500, loss * 500], [500, 500])
    np.testing.assert_allclose(plain.weights, [0.5, 0.5], atol=1e-6)
    assert guided.weights[1] > 0.6


@pytest.mark.parametrize("name", ["progress", "ado", "reducible"])
def test_state_round_trip_keeps_calibrated_reference(tmp_path, name):
    path = _proposal(tmp_path, {"a": 2.0, "b": 1.0})
    a = make_mixer(name, ["a", "b"], warmup=0, reference=str(path))
    for t in range(1, 6):
        a.update(t, [400.0 - 10 * t, 300.0 - 20 * t], [100, 100])
    b = make_mixer(name, ["a", "b"], warmup=0, reference=str(path))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for t in range(6, 12):
        wa = a.update(t, [400.0 - 10 * t, 300.0 - 20 * t], [100, 100])
        wb = b.update(t, [400.0 - 10 * t, 300.0 - 20 * t], [100, 100])
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(b.reference.loss(b.tokens_seen), a.reference.loss(a.tokens_seen))


def test_job_directory_and_proposal_object_give_the_proposal_file_curves(tmp_path):
    from mixopt.proposal import Proposal

    path = _proposal(tmp_path, {"a": 2.0, "b": 3.0})
    by_file, by_dir = load_reference(path, ["a", "b"]), load_reference(tmp_path, ["a", "b"])
    by_obj = load_reference(Proposal.from_dict(json.loads(path.read_text())), ["a", "b"])
    for ref in (by_file, by_dir, by_obj):
        ref.calibrate(np.array([5.0, 4.0]), 10_000)
    for ref in (by_dir, by_obj):
        np.testing.assert_allclose(ref.loss(300_000), by_file.loss(300_000))
    np.testing.assert_allclose(by_obj.loss(1_000_000), [2.0, 3.0])
    with pytest.raises(MixerError, match="cannot read proposal"):
        load_reference(tmp_path / "empty-job", ["a", "b"])


def test_proposal_curves_from_the_search_are_followed_and_stretched(tmp_path):
    path = tmp_path / "proposal.json"
    path.write_text(json.dumps({"weights": {"a": 0.5, "b": 0.5}, "predicted_targets": {"a": 2.0, "b": 3.0},
                                "reference_curves": {"a": [1.0, 100.0, 0.5], "b": [3.0, 0.0, 0.0]},
                                "context": {"fidelity": {"preset": "dense-tiny", "tokens": 10_000}}}))
    ref = load_reference(path, ["a", "b", "c"])
    np.testing.assert_allclose(ref.loss(10_000)[:2], [2.0, 3.0])  # the law itself, no calibration needed
    np.testing.assert_allclose(ref.loss(2_500)[:2], [3.0, 3.0])
    assert np.isnan(ref.loss(10_000)[2])
    ref.calibrate(np.array([9.0, 9.0, 9.0]), 100)  # a law is not re-anchored to the first loss seen
    np.testing.assert_allclose(ref.loss(10_000)[:2], [2.0, 3.0])
    longer = load_reference(path, ["a", "b"], total_tokens=40_000)  # this run is 4x the proxy's tokens
    np.testing.assert_allclose(longer.loss(40_000), [2.0, 3.0])  # it ends where the proxy's curve ends
    np.testing.assert_allclose(longer.loss(10_000), ref.loss(2_500)[:2])


@pytest.mark.parametrize("curves, match", [
    ({"a": [1.0, -5.0, 0.5]}, "B, beta >= 0"),
    ({"a": "steep"}, "is not \\[E, B, beta\\]"),
    ({"zzz": [1.0, 1.0, 0.5]}, "names a domain"),
])
def test_bad_proposal_curves_are_a_one_line_error(tmp_path, curves, match):
    path = tmp_path / "proposal.json"
    path.write_text(json.dumps({"weights": {"a": 1.0}, "reference_curves": curves,
                                "context": {"fidelity": {"tokens": 10_000}}}))
    with pytest.raises(MixerError, match=match) as e:
        make_mixer("default", ["a", "b"], reference=path)
    assert "\n" not in str(e.value)
