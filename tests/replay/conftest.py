"""Fixtures for the replay tests."""

from __future__ import annotations

import pandas as pd
import pytest
from replay_tables import synthetic_table


@pytest.fixture
def mf_table() -> pd.DataFrame:
    """Two fidelities (size 1 and 8), 60 mixtures, a known optimum (see ``replay_tables``)."""
    return synthetic_table()
