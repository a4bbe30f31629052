"""The GP with heteroscedastic noise from repeated runs (``fit(X, y, y_var=...)`` through ``fit_model``)."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import DataError
from mixopt.fit import fit_table
from mixopt.noise import noise_at
from mixopt.runs import RunTable
from mixopt.surrogates import fit_model, make_surrogate


def _line(seed: int, r: int = 4, jitter: float = 0.0):
    """Two domains, mixtures on a grid, each run ``r`` times; the noise std grows with the weight on ``a``.

    jitter: move each row by a negligible amount (1e-7) so that no row repeats another: the same runs, but
    the fit cannot know they are repeats (the homoscedastic baseline).
    """
    rng = np.random.default_rng(seed)
    x = np.repeat(np.linspace(0.05, 0.95, 10), r)
    y = 3.0 + 0.3 * (x - 0.5) ** 2 + (0.005 + 0.25 * x) * rng.standard_normal(len(x))
    W = np.column_stack([x, 1 - x]) + jitter * np.arange(len(x))[:, None] * np.array([1.0, -1.0])
    return RunTable.from_arrays(W, y, domains=["a", "b"], target_names=["loss"])


def _std_ratio(model) -> float:
    """Posterior std (latent, at the design mixtures) on the noisy side over the quiet side."""
    x = np.linspace(0.05, 0.95, 10)
    _, sd = model.predict(np.column_stack([x, 1 - x]))
    return float(sd[x > 0.65].mean() / sd[x < 0.35].mean())


def test_heteroscedastic_gp_is_unsure_where_the_runs_are_noisy_and_the_homoscedastic_one_cannot_tell():
    hetero = fit_model("gp", _line(0), "mean", seed=0)
    homo = fit_model("gp", _line(0, jitter=1e-7), "mean", seed=0)
    assert hetero.y_var is not None and homo.y_var is None
    noise = hetero.y_var  # the fixed noise the GP was fitted with: larger where the runs are noisier
    x = hetero.inputs.X[:, 0]
    assert noise[x > 0.65].mean() > 4 * noise[x < 0.35].mean()
    # (over seeds 0-3 of this design: 1.8-2.1 with the noise known, 1.0-1.4 without)
    assert _std_ratio(hetero) > 1.6
    assert 0.7 < _std_ratio(homo) < 1.45


def _lucky(jitter: float = 0.0):
    """Mixtures quiet below a = 0.62 (std 0.005), noisy above (std 0.2), each run 3 times; the truth is best
    at a = 0.35. The mixture a = 0.75 had one lucky run, 0.7 below its truth, which puts its mean below
    every quiet mixture's."""
    rng = np.random.default_rng(2)
    x = np.repeat(np.r_[np.linspace(0.02, 0.6, 12), [0.65, 0.75, 0.85, 0.95]], 3)
    f = 3.0 + 0.5 * (x - 0.35) ** 2
    y = f + np.where(x > 0.62, 0.2, 0.005) * rng.standard_normal(len(x))
    lucky = np.isclose(x, 0.75)
    y[lucky] = f[lucky] + np.array([-0.7, 0.05, 0.0])
    W = np.column_stack([x, 1 - x]) + jitter * np.arange(len(x))[:, None] * np.array([1.0, -1.0])
    return RunTable.from_arrays(W, y, domains=["a", "b"], target_names=["loss"])


def test_with_repeats_the_proposal_is_not_fooled_by_a_lucky_noisy_run():
    aware = fit_table(_lucky(), surrogate="gp", propose=True, folds=0).proposal
    blind = fit_table(_lucky(jitter=1e-7), surrogate="gp", propose=True, folds=0).proposal
    assert aware.weights["a"] < 0.6  # among the quiet mixtures, near the true optimum
    assert 3.0 + 0.5 * (aware.weights["a"] - 0.35) ** 2 < 3.02
    assert blind.weights["a"] > 0.62  # the same runs, not known as repeats: it chases the lucky run
    # the trust report gives the noise at the proposal: far below the lucky mixture's
    assert aware.trust["noise"]["repeats"] == 0 and aware.trust["noise"]["n_groups"] == 16
    assert noise_at(_lucky(), [0.75, 0.25])["std"] > 2 * aware.trust["noise"]["std"]


def test_without_repeats_the_gp_is_exactly_todays():
    t = _line(1, jitter=1e-7)
    m = fit_model("gp", t, "mean", seed=0)
    plain = make_surrogate("gp", random_state=0).fit(m.inputs.X, m.inputs.Y[:, 0])
    W = np.random.default_rng(3).dirichlet(np.ones(2), 5)
    np.testing.assert_allclose(m.predict(W)[0], plain.predict(W), rtol=1e-10)
    assert m.surrogate.noise_var_ is None


def test_y_var_errors_are_one_line():
    W = np.random.default_rng(0).dirichlet(np.ones(3), 8)
    y = W[:, 0]
    with pytest.raises(DataError, match="does not model per-run noise"):
        make_surrogate("linear").fit(W, y, y_var=np.ones(8))
    with pytest.raises(DataError, match="y_var: expected non-negative variances"):
        make_surrogate("gp").fit(W, y, y_var=-np.ones(8))
    with pytest.raises(DataError, match="rows but X has"):
        make_surrogate("gp").fit(W, y, y_var=np.ones(7))


@pytest.mark.parametrize("fidelity_model", ["multitask", "downsampling"])
def test_multi_fidelity_gp_with_repeats_still_runs_the_cost_aware_acquisition(fidelity_model):
    from mixopt.events import since, snapshot
    from mixopt.strategies import make_strategy

    rng = np.random.default_rng(0)
    W = np.repeat(rng.dirichlet(np.ones(3), 8), 2, axis=0)  # 8 mixtures x 2 seeds, at two fidelities
    F = np.where(np.arange(16) % 4 < 2, 1e4, 4e4)
    y = 3 - W[:, 0] + (F == 1e4) * 0.3 + (0.02 + 0.2 * W[:, 1]) * rng.standard_normal(16)
    t = RunTable.from_arrays(W, y, domains=list("abc"), target_names=["loss"], fidelity=F, fidelity_names=["tokens"])
    s = make_strategy("bo", seed=0, fidelity_model=fidelity_model, surrogate_params={"max_iter": 30})
    assert s.model(t).y_var is not None and s.model(t).surrogate.fidelity_model_ == fidelity_model
    before = snapshot()
    picks = s.ask(t, rng.dirichlet(np.ones(3), 200), 3)
    assert len(picks) == 3 and len({c for c, _ in picks}) == 3
    assert "acquisition.mes_failed" not in since(before)  # the MES fantasizes with the per-run noise
