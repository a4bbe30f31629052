"""Capability flags for tests: GPU and Triton tests skip cleanly on machines without them.

>>> from mixopt.kernels.testing import requires_cuda, requires_triton
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

__all__ = ["HAS_CUDA", "HAS_SM90", "HAS_TRITON", "requires_cuda", "requires_sm90", "requires_triton"]

HAS_CUDA = torch.cuda.is_available()
HAS_SM90 = HAS_CUDA and torch.cuda.get_device_capability() >= (9, 0)
HAS_TRITON = HAS_CUDA and importlib.util.find_spec("triton") is not None

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
requires_sm90 = pytest.mark.skipif(not HAS_SM90, reason="needs a CUDA GPU with compute capability >= 9.0")
requires_triton = pytest.mark.skipif(not HAS_TRITON, reason="needs CUDA and the triton package")
