"""Lower layers never import upper ones (read from the source: every import, lazy ones included).

The house (``shared/STYLE.md``): data -> proxies (with kernels as leaves) -> the spine (run table,
objective, feasible set, proposal) -> surrogates -> strategies -> search / replay / fit -> CLI. Online
mixers sit beside the search and know none of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the module name it installs as
PACKAGES = {"mixopt": "mixopt", "proxies": "mixopt.proxies", "kernels": "mixopt.kernels"}

UPPER = ["mixopt.search", "mixopt.tracking", "mixopt.commands", "mixopt.cli", "mixopt.service", "mixopt.fit"]
# layer (module prefix) -> module prefixes it must never import
FORBIDDEN = {
    "mixopt.kernels": ["mixopt."],  # a leaf: nothing of mixopt outside mixopt.kernels
    "mixopt.proxies": [*UPPER, "mixopt.strategies", "mixopt.replay", "mixopt.surrogates", "mixopt.online",
                       "mixopt.acquisition", "mixopt.proposal", "mixopt.config"],
    "mixopt.data": [*UPPER, "mixopt.proxies", "mixopt.kernels", "mixopt.strategies", "mixopt.replay",
                    "mixopt.surrogates", "mixopt.online", "mixopt.acquisition", "mixopt.proposal"],
    "mixopt.errors": ["mixopt."],
    "mixopt.events": ["mixopt."],
    "mixopt.registry": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.strategies", "mixopt.surrogates",
                        "mixopt.replay", "mixopt.online", "mixopt.config"],
    "mixopt.runs": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                    "mixopt.surrogates", "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.acquisition"],
    "mixopt.noise": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                     "mixopt.surrogates", "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.acquisition"],
    "mixopt.objective": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                         "mixopt.surrogates", "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.runs"],
    "mixopt.feasible": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                        "mixopt.surrogates", "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.runs"],
    "mixopt.hierarchy": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                         "mixopt.surrogates", "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.runs",
                         "mixopt.feasible"],
    "mixopt.proposal": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                        "mixopt.surrogates", "mixopt.replay", "mixopt.online", "mixopt.config"],
    "mixopt.surrogates": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                          "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.acquisition"],
    "mixopt.curves": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                      "mixopt.replay", "mixopt.online", "mixopt.config", "mixopt.acquisition"],
    "mixopt.acquisition": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.strategies",
                           "mixopt.replay", "mixopt.online", "mixopt.config"],
    "mixopt.strategies": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.replay",
                          "mixopt.online", "mixopt.config"],
    "mixopt.trust": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.replay",
                     "mixopt.online", "mixopt.config"],
    "mixopt.replay": [*UPPER, "mixopt.data", "mixopt.proxies", "mixopt.kernels", "mixopt.online"],
    "mixopt.online": [*UPPER, "mixopt.strategies", "mixopt.replay", "mixopt.surrogates", "mixopt.acquisition",
                      "mixopt.proposal", "mixopt.feasible", "mixopt.runs"],
    "mixopt.search": ["mixopt.commands", "mixopt.cli"],
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    base = PACKAGES[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([base, *parts])


def _imports(path: Path, me: str) -> list[tuple[int, str]]:
    """Every module the file ``path`` (module ``me``) imports: absolute names, relative imports resolved."""
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]  # `from mixopt import search`
    return out


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for folder in PACKAGES for p in sorted((ROOT / folder).rglob("*.py"))}


def _layer(module: str) -> str | None:
    hits = [layer for layer in FORBIDDEN if module == layer or module.startswith(layer + ".")]
    return max(hits, key=len) if hits else None


def _violations(layer: str, sources: dict[str, Path]) -> list[str]:
    bad = []
    for me, path in sources.items():
        if _layer(me) != layer:
            continue
        for line, mod in _imports(path, me):
            if mod.startswith(layer + ".") or mod == layer:
                continue
            if any(mod.startswith(prefix) or mod == prefix.rstrip(".") for prefix in FORBIDDEN[layer]):
                bad.append(f"{path.name}:{line} ({me}) imports {mod}")
    return bad


def test_every_source_file_is_in_a_known_package():
    src = _sources()
    assert len(src) > 50 and "mixopt.proxies.trainer" in src and "mixopt.kernels.moe_experts" in src


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(layer):
    bad = _violations(layer, _sources())
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_the_checker_catches_violations(tmp_path):
    """The rules are not vacuous: a lazy import of the search in a surrogate and any mixopt import in a
    kernel are reported."""
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\n\ndef f():\n    from mixopt.search import run_search\n")
    assert _violations("mixopt.surrogates", {"mixopt.surrogates.probe": probe}) == [
        "probe.py:4 (mixopt.surrogates.probe) imports mixopt.search",
        "probe.py:4 (mixopt.surrogates.probe) imports mixopt.search.run_search",
    ]
    leaf = tmp_path / "leaf.py"
    leaf.write_text("from mixopt.errors import MixoptError\nfrom .errors import KernelError\n")
    assert _violations("mixopt.kernels", {"mixopt.kernels.leaf": leaf}) == [
        "leaf.py:1 (mixopt.kernels.leaf) imports mixopt.errors",
        "leaf.py:1 (mixopt.kernels.leaf) imports mixopt.errors.MixoptError",
    ]
