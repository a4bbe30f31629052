"""Shared fixtures: one real local Ray runtime and one small demo corpus per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# `python -m pytest` (the README's command) puts the working directory first on sys.path. From the checkout's root
# that makes its kernels/ and proxies/ folders importable as top-level `kernels` and `proxies`, shadowing the PyPI
# packages of those names (transformers >= 5.25 imports Hugging Face's `kernels` and failed on ours). mixopt installs
# them as mixopt.kernels / mixopt.proxies and needs no checkout on sys.path, so the root is taken off.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _ROOT]

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread per test: the suite runs on small shared machines, where oversubscribed OpenMP
    threads make tiny matmuls orders of magnitude slower. Ray workers and subprocesses set their own."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray runtime on this machine (2 CPUs, small object store), shut down at the session's end."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            _node_ip_address="127.0.0.1",
            object_store_memory=80 * 1024**2,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
    yield ray
    ray.shutdown()


SHARED = Path(os.environ.get("MIXOPT_SHARED") or Path(__file__).resolve().parents[2] / "shared")


@pytest.fixture(scope="session")
def regmix_dir() -> Path:
    """RegMix's published proxy runs in ``../shared/data/regmix`` beside the checkout (or ``$MIXOPT_SHARED``).

    Missing tables fail the test under CI (which always has shared/) and skip it elsewhere, with the path.
    """
    d = SHARED / "data" / "regmix"
    if not (d / "train_mixture_1m.csv").exists():
        msg = f"RegMix tables not found in {d} (set MIXOPT_SHARED to the shared/ folder)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """A demo corpus directory (built once per session) with its `job.yaml`."""
    from mixopt.data import build_demo_corpus

    out = tmp_path_factory.mktemp("demo")
    build_demo_corpus(out, seed=0)
    return out


@pytest.fixture(scope="session")
def demo_config(demo_corpus, tmp_path_factory):
    """A small job config over the demo corpus, with its own workspace."""
    from mixopt.config import load_job_config

    cfg = load_job_config(demo_corpus / "job.yaml")
    cfg.workspace = str(tmp_path_factory.mktemp("workspace"))
    cfg.tokenizer.vocab_size = 512
    return cfg


@pytest.fixture(scope="session")
def demo_prepared(demo_config):
    """`PreparedData` for the demo corpus (tokenizer trained, shards written)."""
    from mixopt.data import prepare_data

    return prepare_data(demo_config, progress=False)
