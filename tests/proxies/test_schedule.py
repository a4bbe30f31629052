"""Learning-rate schedules and evaluation points."""

from __future__ import annotations

import pytest

from mixopt.proxies.schedule import eval_steps, lr_factor


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_schedules_warm_up_peak_and_decay_to_the_floor(schedule):
    total = 100
    f = [lr_factor(s, total, schedule=schedule, warmup=0.1, min_lr_ratio=0.1) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:9], f[1:10], strict=True))                 # linear warmup
    assert f[-1] == pytest.approx(0.1)                                  # decays to min_lr_ratio
    assert all(b <= a + 1e-12 for a, b in zip(f[10:-1], f[11:], strict=True))         # never rises after warmup


def test_wsd_holds_the_peak_until_the_decay_phase():
    f = [lr_factor(s, 100, schedule="wsd", warmup=0.1, decay_frac=0.2) for s in range(100)]
    assert all(v == 1.0 for v in f[10:80]) and f[80] < 1.0


def test_eval_steps_are_log_spaced_and_end_at_the_last_step():
    steps = eval_steps(1000, 6)
    assert steps[-1] == 1000 and len(steps) == 6 and steps[0] == 50
    ratios = [b / a for a, b in zip(steps[:-1], steps[1:], strict=True)]
    assert max(ratios) / min(ratios) < 1.1                              # geometric spacing
    assert eval_steps(3, 6) == [1, 2, 3]                                # deduplicated for short runs
    assert eval_steps(7, 1) == [7]
