"""One torch thread per test process: the suite shares a small machine, and oversubscribed OpenMP
threads make tiny matmuls orders of magnitude slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
