"""The package's structure: data flows one way, with no cycles and no borrowed privates.

The folders show the flow ``laws -> data -> estimators -> planning -> io -> report -> cli``
(:data:`ORDER`). Three rules, checked on the source with ``ast``:

* module-level imports point backwards along :data:`ORDER` (or within one module's
  own layer, to a module listed before it);
* imports inside functions (heavy or optional modules loaded on use, such as the
  CLI's commands or the frontier behind ``ScalingFit.frontier``) may point forwards,
  but the graph of *all* imports, lazy ones included, has no cycle;
* no module imports another module's private (``_name``) attributes; shared helpers
  live in private modules (``bayescale/_something.py``) that both import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayescale"

# Module-level imports may only point to a module earlier in this list.
ORDER = [
    "errors", "_util", "_atomic",
    "laws.base", "laws.chinchilla", "laws.kaplan", "laws.data_constrained", "laws.farseer",
    "laws.registry",
    "laws.published",
    "laws",
    "data.sources", "data.registry", "data.loaders", "data.synthetic", "data.validate", "data.formats", "data.columns", "data.runs",
    "data.simulate", "data.curves", "data",
    "_solvers.lbfgs", "_solvers.newton", "_solvers",
    "estimators.padding", "estimators.huber", "estimators.huber_mle", "estimators.bootstrap", "estimators.priors", "estimators.likelihoods", "estimators.slope_coords", "estimators.run_offsets", "estimators.model", "estimators.diagnostics", "estimators._nuts_setup", "estimators.subsample", "estimators._nuts_program", "estimators.idata", "estimators.nuts", "estimators.pooled",
    "estimators.fit", "estimators.grid_posterior", "estimators.extrapolation", "estimators.allocation", "estimators.isoflop_parabola", "estimators.isoflop", "estimators.optimum_error", "estimators.isoflop_bayes",
    "estimators.envelope", "estimators.predict", "estimators.loo", "estimators.stacking", "estimators.group_fits", "estimators.groups", "estimators",
    "planning._cost_solve", "planning.costs", "planning._common", "planning._numerical", "planning.frontier", "planning.efficiency", "planning.serving",
    "planning.rules", "planning.decisions", "planning.design_score", "planning.design_candidates", "planning.design_noise", "planning.design_objective",
    "planning.design", "planning", "design",
    "validation.backtest", "validation",
    "io",
    "report._format", "report.folder", "report.compare", "report.tables", "report.law_comparison", "report.approaches", "report.groups", "report.group_text", "report._plotting", "report._fit_plots",
    "report.plots", "report.calibration", "report.figures", "report.honest", "report.render", "report.build", "report.group_report", "report",
    "cli._common", "cli.datasets", "cli._report_groups", "cli.fit", "cli.frontier", "cli.decide", "cli.report", "cli.laws", "cli.predict", "cli.backtest", "cli.design", "cli",
]


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str | None, level: int, here: str, is_pkg: bool) -> str | None:
    if level:
        base = here.split(".") if is_pkg else here.split(".")[:-1]
        base = base[: len(base) - (level - 1)] if level > 1 else base
        full = ".".join(base + ([module] if module else []))
        return full
    if module is None or not (module == "bayescale" or module.startswith("bayescale.")):
        return None
    return module.removeprefix("bayescale").lstrip(".")


def _imports(path: Path):
    """Yield ``(target, names, lazy)`` for every import of a bayescale module."""
    here = _name(path)
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        lazy = id(node) not in top
        if isinstance(node, ast.ImportFrom):
            target = _resolve(node.module, node.level, here, path.name == "__init__.py")
            if target is None:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                if (PACKAGE / sub.replace(".", "/")).with_suffix(".py").exists() or \
                        (PACKAGE / sub.replace(".", "/") / "__init__.py").exists():
                    yield sub, (), lazy
                else:
                    yield target, (alias.name,), lazy
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bayescale."):
                    yield alias.name.removeprefix("bayescale."), (), lazy


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _name(path)
        if name in ("", "__main__"):
            continue
        yield name, path


def _rank(name: str) -> int:
    if name in ORDER:
        return ORDER.index(name)
    raise AssertionError(f"add bayescale.{name} to ORDER in tests/test_layering.py")


def test_every_module_has_a_place():
    for name, _ in _modules():
        _rank(name)


@pytest.mark.parametrize("name,path", list(_modules()), ids=lambda v: str(v))
def test_module_level_imports_point_backwards(name, path):
    own = _rank(name)
    for target, _, lazy in _imports(path):
        if lazy or target == "" or target == name:
            continue
        if name.startswith("cli") and target == "cli":
            continue
        assert _rank(target) < own, (
            f"{path.relative_to(PACKAGE)} imports bayescale.{target} at module level, "
            f"which comes after it in the flow")


@pytest.mark.parametrize("name,path", list(_modules()), ids=lambda v: str(v))
def test_no_private_names_of_other_modules(name, path):
    for target, names, _ in _imports(path):
        if target == name:
            continue
        private_module = any(part.startswith("_") and part != "__init__"
                             for part in target.split("."))
        for imported in names:
            if imported.startswith("_") and not imported.startswith("__") \
                    and not private_module:
                raise AssertionError(
                    f"{path.relative_to(PACKAGE)} imports private {imported!r} from "
                    f"bayescale.{target}: move it to a shared private module")


def test_no_import_cycles_lazy_imports_included():
    graph: dict[str, set[str]] = {}
    for name, path in _modules():
        graph[name] = {t for t, _, _ in _imports(path) if t and t != name}
    # a package's __init__ is not an edge target for its own members
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)


def test_importing_the_package_leaves_jax_config_alone():
    import subprocess
    import sys

    code = (
        "import jax; before = dict(jax.config.values);"
        "import bayescale, bayescale.estimators.fit, bayescale.estimators.huber, "
        "bayescale.planning.frontier, bayescale.estimators.nuts, bayescale.estimators.model;"
        "after = dict(jax.config.values);"
        "changed = {k for k in before if before[k] != after.get(k)};"
        "assert not changed, changed"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
