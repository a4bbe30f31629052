"""Ray started in the background: usable once ready, warm workers, reused when up, stopped when owned."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mixopt.search.ray_runtime import ray_session


def test_a_running_runtime_is_reused_warmed_and_left_running(ray_cluster, tiny_job):
    cfg = tiny_job("rt-reuse")
    with ray_session(cfg, warm=2) as runtime:
        ray = runtime.ready()
        assert ray is ray_cluster and not runtime.owned
        assert runtime.warm_done(timeout=120) is not None  # both workers imported torch and the trainer
        assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    assert ray_cluster.is_initialized()  # not ours to stop


def test_an_embedded_runtime_started_in_the_background_works_and_is_shut_down(tmp_path):
    # a fresh process: no Ray running there, so the session starts one from its own thread
    code = textwrap.dedent("""
        import os
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        from types import SimpleNamespace as NS
        import ray
        from mixopt.search.ray_runtime import ray_session
        cfg = NS(ray=NS(address=None, num_cpus=1, object_store_memory=80 * 1024**2),
                 search=NS(cpus_per_proxy=1))
        os.environ.pop("OMP_NUM_THREADS", None)
        with ray_session(cfg, warm=1) as runtime:
            r = runtime.ready()
            assert runtime.owned
            print("task", r.get(r.remote(lambda x: x + 1).remote(41)))
            print("worker threads", r.get(r.remote(lambda: os.environ.get("OMP_NUM_THREADS")).remote()))
            print("warm", runtime.warm_done(timeout=120) is not None)
        print("after", ray.is_initialized(), os.environ.get("OMP_NUM_THREADS"))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "task 42" in out.stdout and "warm True" in out.stdout
    assert "worker threads 1" in out.stdout  # search.cpus_per_proxy reaches the workers' torch
    assert "after False None" in out.stdout  # stopped, and this process's environment is its own again


def test_a_proxy_task_loads_the_trainer_not_the_search_loop(tiny_job, tmp_path):
    """A fresh Ray worker unpickles ``run_proxy`` (importing ``mixopt.search.workers``) and trains: it must not
    pay for the loop, the surrogates, scikit-learn or scipy on the way (about 1.3 s of CPU per fresh worker)."""
    from mixopt.search.workers import train_settings

    cfg = tiny_job("worker-imports")
    code = textwrap.dedent(f"""
        import json, sys
        from mixopt.search.workers import run_proxy, warm_worker
        warm_worker(1)
        rec = run_proxy({str(cfg.data_dir)!r}, "dense-tiny", {{d: 1.0 for d in {list(cfg.domains)!r}}}, 1024, 0,
                        {train_settings(cfg)!r}, 1)
        heavy = ("mixopt.search.loop", "mixopt.surrogates", "sklearn", "scipy", "botorch", "mlflow", "ray")
        print(json.dumps({{"status": rec["status"], "loaded": [m for m in heavy if m in sys.modules]}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"status": "ok", "loaded": []}


def test_the_search_package_still_exports_its_names():
    import mixopt.search as search

    assert search.run_search.__module__ == "mixopt.search.loop"
    assert {name: getattr(search, name).__name__ for name in search.__all__} == {n: n for n in search.__all__}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        search.nope  # noqa: B018
