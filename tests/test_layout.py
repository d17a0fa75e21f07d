"""The package's layout: layers whose imports point down only, no import cycle, no module over 500 lines.

Every ``import`` of a harlite module counts, at the top of a module or inside a function (a function-local
import is still a dependency, and is where cycles hide).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harlite"
# Lowest first; a module may import from its own layer and the layers below it. run and board share a layer
# and do not import each other.
LAYERS = [("errors", "tf"), ("io",), ("core",), ("data",), ("engine",), ("codegen",), ("bundle",), ("run", "board"),
          ("web",), ("pipeline",), ("cli",), ("__main__",)]  # fmt: skip
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The harlite modules ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("harlite"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("harlite"))
    return found


def _layer(module: str) -> tuple[int, str]:
    """(rank, room) of a module: its subpackage or top-level module under harlite."""
    if module == "harlite":
        return 0, "harlite"
    room = module.split(".")[1]
    for rank, rooms in enumerate(LAYERS):
        if room in rooms:
            return rank, room
    raise AssertionError(f"{module} lies in no layer: add its room to LAYERS in tests/test_layout.py")


MODULES = _modules()
GRAPH = {name: {m for m in _imports(path, MODULES) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_the_graph_sees_function_local_imports() -> None:
    # pipeline.build imports pipeline.qat inside a function (qat imports TensorFlow): the graph has the edge.
    assert "harlite.pipeline.qat" in GRAPH["harlite.pipeline.build"]
    assert "harlite.codegen.sources" in GRAPH["harlite.bundle.loader"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module: str) -> None:
    rank, room = _layer(module)
    for target in sorted(GRAPH[module]):
        target_rank, target_room = _layer(target)
        assert target_rank < rank or target_room in (room, "harlite"), \
            f"{module} ({room}) imports {target} ({target_room}), a layer above or beside it"  # fmt: skip


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(target) :] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


def test_no_module_over_500_lines() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_the_library_knows_nothing_of_click() -> None:
    users = sorted(name for name, path in MODULES.items() if not name.startswith("harlite.cli")
                   and any(isinstance(n, (ast.Import, ast.ImportFrom)) and "click" in ast.unparse(n).split()
                           for n in ast.walk(ast.parse(path.read_text()))))  # fmt: skip
    assert users == []
