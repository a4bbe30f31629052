"""Fixtures for the search tests: tiny job configs over the session's prepared demo corpus."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_job(demo_config, demo_prepared):
    """Factory: a tiny search job (CPU-tiny proxies, ~16k tokens each) over the shared demo workspace.

    ``tiny_job(name, **section_overrides)`` returns a JobConfig; the data is already prepared.
    """

    def make(name: str, *, search=None, budget=None, proxy=None, tracking=None):
        cfg = demo_config.model_copy(deep=True)
        cfg.name = name
        cfg.proxy = cfg.proxy.model_copy(update={"preset": "dense-tiny", "tokens": 16_384, "seq_len": 64,
                                                 "batch_size": 8, "eval_points": 2, "eval_tokens": 1024,
                                                 **(proxy or {})})
        cfg.search = cfg.search.model_copy(update={"n_init": 3, "parallel": 2, "candidates": 256,
                                                   **(search or {})})
        cfg.budget = cfg.budget.model_copy(update={"runs": 4, **(budget or {})})
        cfg.tracking = cfg.tracking.model_copy(update=tracking or {})
        return type(cfg).model_validate(cfg.model_dump())

    return make


@pytest.fixture
def fake_runs():
    """Factory: finished runs (``RunEntry``) without training, for decisions made from a job's runs.

    ``fake_runs(domains, n=14, seed=0, concentration=80.0, slope=(-2.0, 1.0))``: ``n`` mixtures drawn from
    Dirichlet(``concentration``) (80: clustered near uniform, 1: spread over the simplex), each domain's loss
    ``5 + slope_d * w_d * k`` plus noise of 0.005, with ``slope`` spaced linearly from the first domain to the last.
    """
    import numpy as np

    from mixopt.search.state import RunEntry

    def make(domains, *, n=14, seed=0, concentration=80.0, slope=(-2.0, 1.0)):
        rng = np.random.default_rng(seed)
        W = rng.dirichlet(np.full(len(domains), concentration), n)
        s = np.linspace(*slope, len(domains))
        out = []
        for i, w in enumerate(W):
            loss = 5.0 + s * w * len(domains) + 0.005 * rng.normal(size=len(domains))
            out.append(RunEntry(run_id=f"r{i:04d}", weights=dict(zip(domains, w.tolist(), strict=True)), fidelity=0,
                                preset="dense-tiny", tokens=16384, seed=i, source="init", status="ok", objective=None,
                                final_loss=dict(zip(domains, loss.tolist(), strict=True)), flops=1e9, wall_time=1.0))
        return out

    return make
