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
