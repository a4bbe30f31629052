"""Installed names: mixopt owns only ``mixopt``; ``proxies`` and ``kernels`` live inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bare_kernels_and_proxies_do_not_resolve_to_this_project(tmp_path):
    found = _run("import importlib.util as u, json\n"
                 "print(json.dumps({n: getattr(u.find_spec(n), 'origin', None) for n in ('kernels', 'proxies')}))",
                 tmp_path)
    for name, origin in found.items():  # a PyPI package of that name (in a venv inside the checkout too) is fine
        assert origin is None or not Path(origin).resolve().is_relative_to(ROOT / name), f"`import {name}` finds {origin}"


def test_the_test_session_does_not_see_the_checkout_as_top_level_packages():
    """`python -m pytest` from the checkout's root puts it on sys.path; the suite's conftest takes it off, so
    Hugging Face's `kernels` (imported by transformers >= 5.25) is not shadowed by this project's folder."""
    import importlib.util

    for name in ("kernels", "proxies"):
        spec = importlib.util.find_spec(name)
        assert spec is None or not spec.origin or not Path(spec.origin).resolve().is_relative_to(ROOT / name), \
            f"`import {name}` finds {spec.origin}"


def test_kernels_and_proxies_install_inside_mixopt_without_heavy_imports(tmp_path):
    got = _run("import json, sys, mixopt.kernels.errors, mixopt.proxies.record as r\n"
               "print(json.dumps({'kernels': mixopt.kernels.errors.__file__, 'record': r.__file__,\n"
               "                  'heavy': sorted(m for m in ('pydantic', 'yaml', 'ray', 'mlflow') if m in sys.modules)}))",
               tmp_path)
    assert Path(got["kernels"]).resolve() == ROOT / "kernels" / "errors.py"
    assert Path(got["record"]).resolve() == ROOT / "proxies" / "record.py"
    assert got["heavy"] == []  # the lower layers load neither the config schema nor the services


def test_every_package_folder_is_listed_in_pyproject():
    """The package list is explicit (proxies/ and kernels/ are mapped into mixopt): a new subpackage that is
    not listed would be missing from a wheel."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {"mixopt.proxies": "proxies", "mixopt.kernels": "kernels"}
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mixopt").rglob("__init__.py")}
    assert set(cfg["packages"]) == found | {"mixopt.proxies", "mixopt.kernels"}
