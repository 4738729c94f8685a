"""Data flows one way through the package: a module imports only modules before it.

Module-level imports are checked; imports inside functions are the deliberate
exceptions (heavy or optional modules loaded on use, e.g. the CLI's commands, the
frontier behind ``ScalingFit.frontier``, the generator behind ``load_runs("synthetic")``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayescale"

ORDER = [
    "errors", "law", "datasets", "data", "synthetic", "optim", "baseline", "models",
    "diagnostics", "inference", "costs", "frontier", "decisions", "fitting", "io", "plot",
    "report", "cli",
]


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bayescale"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "bayescale" and len(parts) > 1:
                    found.add(parts[1])
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        name = rel.parts[0].removesuffix(".py")
        if name in ("__init__", "__main__", "_types"):
            continue
        yield name, path


def test_every_module_has_a_place():
    names = {name for name, _ in _modules()}
    assert names <= set(ORDER), f"add {sorted(names - set(ORDER))} to ORDER"


@pytest.mark.parametrize("name,path", list(_modules()), ids=lambda v: str(v))
def test_imports_point_backwards(name, path):
    own = ORDER.index(name)
    for imported in _module_level_imports(path):
        if imported in ("__version__", "cli") and name == "cli":
            continue
        if imported == "__version__":
            continue
        assert imported in ORDER, f"{path.name} imports unknown module {imported}"
        assert ORDER.index(imported) < own or imported == name, (
            f"{path.relative_to(PACKAGE)} imports bayescale.{imported}, which comes after it")


def test_importing_the_package_leaves_jax_config_alone():
    import subprocess
    import sys

    code = (
        "import jax; before = dict(jax.config.values);"
        "import bayescale, bayescale.fitting, bayescale.baseline, bayescale.frontier, "
        "bayescale.inference, bayescale.models;"
        "after = dict(jax.config.values);"
        "changed = {k for k in before if before[k] != after.get(k)};"
        "assert not changed, changed"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
