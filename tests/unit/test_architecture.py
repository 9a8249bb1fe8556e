"""The layout keeps its promises: no import circles, dependencies one way, small modules.

The import graph is read from the source (``ast``), every import counted, also those inside
functions: a lazy import that closes a circle is still a circle, only a hidden one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("landslide_mapper", "training")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 120

# What each sub-package of the engine may import from the rest of the engine (besides itself and
# the shared contract and errors), as drawn in README.md's layout section and core/__init__.py.
CORE_ALLOWED = {
    "raster": set(),
    "models": set(),
    "polygons": set(),
    "inputs": {"raster", "models"},
    "loop": {"raster", "models", "polygons"},
    "report": {"polygons", "raster"},
    "mapping": {"raster", "models", "polygons", "inputs", "report"},
    "batch": {"mapping", "inputs", "polygons", "models", "raster"},
}
CORE_SHARED = {"contract", "errors", "paths", "georeferencing", "staging"}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def _modules() -> dict[str, Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def _imports(module: Module, modules: dict[str, Module]) -> set[str]:
    """Names of the project's modules that ``module`` imports (at any depth in its code)."""
    base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(module.path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from pkg import sub`` imports the module pkg.sub where there is one.
            names = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module.name:
                targets.add(name)
    return targets


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(module, modules) for name, module in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_cycle_finder_finds_a_circle():
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(circle) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_lazy_imports_are_counted(graph):
    # the run's polygons step imports the vectorizer inside a function; the engine imports the
    # DEM terrain bands at the top.
    polygons_step = graph["landslide_mapper.core.mapping.vectorizing"]
    assert "landslide_mapper.core.polygons.vectorize" in polygons_step
    assert "landslide_mapper.core.inputs.terrain" in graph["landslide_mapper.core.mapping.engine"]


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _core_part(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["landslide_mapper", "core"] or len(parts) < 3:
        return None
    return parts[2]


def test_core_subpackages_depend_one_way(graph):
    wrong = []
    for module, targets in graph.items():
        part = _core_part(module)
        if part is None:
            continue
        for target in targets:
            if target.startswith(("landslide_mapper.", "training")) and _core_part(target) is None:
                wrong.append(f"{module} -> {target} (core imports only core)")
                continue
            other = _core_part(target)
            if other is None or other == part or other in CORE_SHARED:
                continue
            if part in CORE_SHARED:
                wrong.append(f"{module} -> {target} (the contract and errors import no concern)")
            elif other not in CORE_ALLOWED.get(part, set()):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "dependencies against the layout:\n" + "\n".join(sorted(wrong))


def _third_party_imports(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_qgis_or_torch():
    offenders = []
    for module in _modules().values():
        if not module.name.startswith("landslide_mapper.core"):
            continue
        bad = _third_party_imports(module.path) & {"qgis", "PyQt5", "PyQt6", "torch", "training",
                                                   "segmentation_models_pytorch"}
        if bad:
            offenders.append(f"{module.name}: {', '.join(sorted(bad))}")
    assert not offenders, offenders


def test_plugin_never_imports_torch_or_training():
    offenders = []
    for module in _modules().values():
        if module.name.startswith("landslide_mapper"):
            bad = _third_party_imports(module.path) & {"torch", "training",
                                                       "segmentation_models_pytorch"}
            if bad:
                offenders.append(f"{module.name}: {', '.join(sorted(bad))}")
    assert not offenders, offenders


def test_cli_commands_import_options_never_each_other(graph):
    wrong = []
    for module, targets in graph.items():
        if not module.startswith("landslide_mapper.cli.") or module.endswith((".main", ".__main__")):
            continue
        for target in targets:
            if target.startswith("landslide_mapper.cli") and target != "landslide_mapper.cli.options":
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_modules_and_functions_stay_small():
    too_long = []
    for module in _modules().values():
        source = module.path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module.path.relative_to(REPO)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module.path.relative_to(REPO)}:{node.lineno} "
                                    f"{node.name}(): {length} lines")
    assert not too_long, (f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a "
                          "function:\n" + "\n".join(too_long))
