"""The import graph of ``plugins/mlops`` has no cycle, and its dependencies point one way.

The graph is read from the source (``ast``), not by importing: every ``import`` and ``from ...
import`` of an ``mlops`` module, at module level and inside functions alike (a function-level
import hides a cycle from Python's import machinery, not from a reader). ``from mlops.a import b``
is an edge to ``mlops.a``, and to ``mlops.a.b`` too when that is a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PACKAGE = PLUGINS / "mlops"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PLUGINS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imported_names(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names; ``mlops`` ones and any other)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package
                base = name.split(".") if is_package(name) else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in MODULES)
    return found


IMPORTS = {name: imported_names(name, path) for name, path in MODULES.items()}
GRAPH = {name: sorted(target for target in targets if target in MODULES and target != name)
         for name, targets in IMPORTS.items()}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in graph.get(node, []):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_covers_the_package():
    assert len(MODULES) > 50
    assert "mlops.deploy.flow" in GRAPH["mlops.operators.sagemaker"] or any(
        t.startswith("mlops.deploy") for t in GRAPH["mlops.operators.sagemaker"])


def test_the_cycle_finder_finds_a_cycle_and_names_it():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None


def test_no_import_cycle_inside_plugins_mlops():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def offenders(room: str, forbidden) -> list[str]:
    return sorted(f"{name} imports {target}" for name, targets in IMPORTS.items()
                  if name == room or name.startswith(room + ".") for target in targets if forbidden(target))


def test_nothing_in_the_plugin_imports_the_developer_tools():
    assert offenders("mlops", lambda t: t == "tools" or t.startswith("tools.")) == []


def test_the_aws_backend_imports_nothing_from_the_local_backend():
    assert offenders("mlops.backends.aws", lambda t: t.startswith("mlops.backends.local")) == []


def test_the_local_backend_imports_nothing_from_the_aws_backend():
    assert offenders("mlops.backends.local", lambda t: t.startswith("mlops.backends.aws")) == []


@pytest.mark.parametrize("room", ["mlops.core"])
def test_core_imports_nothing_from_the_other_rooms(room):
    assert offenders(room, lambda t: t.startswith("mlops.") and not t.startswith(room + ".")) == []


def test_the_ports_import_nothing_but_core():
    allowed = ("mlops.core.", "mlops.backends.base")
    assert offenders("mlops.backends.base",
                     lambda t: t.startswith("mlops.") and not t.startswith(allowed)) == []


# The rooms of plugins/mlops from the bottom up (docs/architecture.md): a room imports only rooms on
# a lower floor; rooms on one floor do not import each other.
FLOORS = [
    ["core"],
    ["hooks", "validation", "backends.base", "backends.limits"],
    ["ingest"],
    ["ml"],
    ["backends.backend"],  # the Backend bundle
    ["backends.aws", "backends.local"],
    ["backends"],  # get_backend(): picks aws or local
    ["deploy"],
    ["monitor"],
    ["ui", "triggers", "sensors"],
    ["notifications"],
    ["dag_defaults", "operators"],
]


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mlops" or len(parts) == 1:
        return None
    if parts[1] == "backends":
        return "backends" if len(parts) == 2 else f"backends.{parts[2]}"
    return parts[1]


def test_every_room_is_on_a_floor():
    floors = {room for floor in FLOORS for room in floor}
    assert {room_of(name) for name in MODULES} - {None} <= floors


def test_rooms_import_only_rooms_below_them():
    floor = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
    upward = sorted(
        f"{name} ({room_of(name)}) imports {target} ({room_of(target)})"
        for name, targets in IMPORTS.items() for target in targets
        if room_of(name) and room_of(target) and room_of(target) != room_of(name)
        and floor[room_of(target)] >= floor[room_of(name)])
    assert upward == [], "\n".join(upward)


def test_the_floor_check_finds_an_upward_import():
    assert room_of("mlops.deploy.flow") == "deploy" and room_of("mlops.backends.aws.hosting") == "backends.aws"
    floor = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
    assert floor["deploy"] > floor["ml"] > floor["core"]
