"""Path containment, bind-host warnings, and a source scan for unsafe deserialisation."""

from __future__ import annotations

import ast
import os
import warnings
from pathlib import Path

import pytest

from mixopt.errors import MixoptError
from mixopt.security import (
    ExposedServerWarning,
    UnsafePathError,
    check_bind_host,
    check_relative,
    ensure_within,
    is_loopback,
    redact_uri,
    safe_join,
    split_credentials,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mixopt", "proxies", "kernels")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_hosts_bind_silently(host):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_bind_host(host) == host
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_exposed_hosts_warn(host):
    with pytest.warns(ExposedServerWarning, match=f"mixopt ui will listen on {host}"):
        assert check_bind_host(host, what="mixopt ui") == host


def test_empty_host_is_refused():
    with pytest.raises(MixoptError, match="empty bind host"):
        check_bind_host("  ")


def test_safe_join_stays_inside(tmp_path):
    assert safe_join(tmp_path, "jobs", "demo") == (tmp_path / "jobs" / "demo").resolve()
    assert safe_join(tmp_path) == tmp_path.resolve()
    for bad in ("../etc", "jobs/../../x", "/etc/passwd", "a\\..\\..\\b", "C:\\x", "a\x00b"):
        with pytest.raises(UnsafePathError):
            safe_join(tmp_path, bad)


def test_symlink_escape_is_caught(tmp_path):
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(root, "link", "file.txt")
    with pytest.raises(UnsafePathError):
        ensure_within(root, outside / "x")
    assert ensure_within(root, root / "jobs" / "x") == (root / "jobs" / "x").resolve()


@pytest.mark.parametrize("text, shown", [
    ("http://alice:s3cret@mlflow:5000/", "http://***@mlflow:5000/"),
    ("https://tok3n@host/api?token=abc&x=1&api_key=k", "https://***@host/api?token=***&x=1&api_key=***"),
    ("postgresql://u:p@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ("failed: POST http://u:p@h:1/api/2.0/runs (refused)", "failed: POST http://***@h:1/api/2.0/runs (refused)"),
    ("sqlite:////srv/ws/mlflow.db", "sqlite:////srv/ws/mlflow.db"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("mail me: user@example.com", "mail me: user@example.com"),
])
def test_credentials_in_uris_are_redacted(text, shown):
    assert redact_uri(text) == shown


def test_split_credentials_decodes_and_keeps_the_rest():
    assert split_credentials("http://al%40ce:p%3Ass@h:5000/x?y=1") == ("http://h:5000/x?y=1", "al@ce", "p:ss")
    assert split_credentials("http://h:5000") == ("http://h:5000", None, None)


def test_check_relative_is_textual():
    assert check_relative("corpus/code") == "corpus/code"
    assert check_relative("a..b/c") == "a..b/c"  # '..' only matters as a whole component
    with pytest.raises(UnsafePathError, match="must be relative"):
        check_relative("/data")
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        check_relative("x/../../y")


def _python_files():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _safe_loaders(tree: ast.AST) -> set[str]:
    """Names of SafeLoader and of classes in this module derived from it (e.g. a duplicate-key check)."""
    safe = {"SafeLoader", "CSafeLoader"}
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name not in safe:
                bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
                if bases & safe:
                    safe.add(node.name)
                    changed = True
    return safe


def _unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    safe_loaders = _safe_loaders(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        kwargs = {k.arg: k.value for k in node.keywords}
        if owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load"):
            loader = kwargs.get("Loader")
            loader_name = loader.attr if isinstance(loader, ast.Attribute) else getattr(loader, "id", None)
            if loader_name not in safe_loaders:
                found.append(f"yaml.{name} without SafeLoader")
        if owner in ("pickle", "cPickle", "dill", "cloudpickle") and name in ("load", "loads"):
            found.append(f"{owner}.{name}")
        if owner == "torch" and name == "load":
            wo = kwargs.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append("torch.load without weights_only=True")
        if owner in ("np", "numpy") and name == "load":
            ap = kwargs.get("allow_pickle")
            if isinstance(ap, ast.Constant) and ap.value is True:
                found.append("numpy.load(allow_pickle=True)")
        if owner == "pd" and name == "read_pickle":
            found.append("pandas.read_pickle")
    return found


def test_scanner_catches_violations():
    bad = (
        "import yaml, pickle, torch\n"
        "yaml.load(s)\nyaml.load(s, Loader=yaml.Loader)\npickle.load(f)\n"
        "torch.load(p)\ntorch.load(p, weights_only=False)\nnp.load(p, allow_pickle=True)\n"
    )
    assert len(_unsafe_calls(ast.parse(bad))) == 6
    good = (
        "class L(yaml.SafeLoader): pass\n"
        "yaml.safe_load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.load(s, Loader=L)\n"
        "torch.load(p, weights_only=True)\n"
    )
    assert _unsafe_calls(ast.parse(good)) == []


def test_package_source_has_no_unsafe_deserialisation():
    problems = []
    files = list(_python_files())
    assert len(files) > 10
    for path in files:
        for what in _unsafe_calls(ast.parse(path.read_text(), filename=str(path))):
            problems.append(f"{path.relative_to(ROOT)}: {what}")
    assert problems == [], "\n".join(problems)
