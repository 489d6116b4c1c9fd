"""The import contract, read from the import graph (function-level imports included):

- the library has no import circle;
- its subpackages are layers by job, and a module imports only from its own layer or from layers
  below it (a corpus reader never reaches for a model, the store never for the answer side);
- the chat (tui/) uses the library only through its public names (`from rag import ...`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rag

ROOT = Path(__file__).parent.parent

# Layers from the bottom up; a module is in the layer of its package (or is named here by module).
# Packages of one layer are independent of each other: neither of the two imports the other.
LAYERS: list[dict[str, set[str]]] = [
    {
        "base": {
            "errors",
            "busy",
            "types",
            "protocols",
            "text",
            "contradictions",
            "resources",
            "settings",
            "setting_groups",
            "datafiles",
            "deadlines",
            "offline",
            "safety",
        }
    },
    {"corpus": {"corpus"}, "backends": {"backends"}},
    {"store": {"store"}},
    {"ingest": {"ingest"}, "answer": {"answer"}},
    {"app": {"assistant", "evaluate", "scoring", "doctor", "testing"}},
    {"serve": {"serve"}},
    {"entry": {"cli", "__init__"}},
]


def module_name(path: Path) -> str:
    """rag/store/index.py -> "store.index"; rag/__init__.py -> "__init__"; rag/store/__init__.py -> "store"."""
    parts = list(path.relative_to(ROOT / "rag").with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The rag modules a file imports, at any depth of its code, as `module_name`s ("rag.store.index" ->
    "store.index"; `from rag.store import vectors` -> "store.vectors"; `from rag import text` -> "text")."""
    package = module_name(path).rpartition(".")[0] if path.name != "__init__.py" else module_name(path)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package and package != "__init__" else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and (node.module == "rag" or node.module.startswith("rag.")):
                module = node.module.removeprefix("rag").lstrip(".")
            else:
                continue
            for alias in node.names:
                name = f"{module}.{alias.name}" if module else alias.name
                out.add(name if name in modules else module or "__init__")
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("rag.") for a in node.names if a.name.startswith("rag."))
    return out


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (ROOT / "rag").rglob("*.py")}
    return {name: _imports(path, set(modules)) & set(modules) - {name} for name, path in modules.items()}


def layer_of(module: str) -> tuple[int, str]:
    """(rank from the bottom, package group) of a module."""
    head = module.split(".")[0]
    for rank, groups in enumerate(LAYERS):
        for group, members in groups.items():
            if head in members:
                return rank, group
    raise AssertionError(f"rag.{module} is in no layer of tests/test_layers.py: add it to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer to a higher one, or between two packages of one layer."""
    wrong = []
    for module, imported in sorted(graph.items()):
        rank, group = layer_of(module)
        for target in sorted(imported):
            target_rank, target_group = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_group != group):
                wrong.append(f"{module} -> {target}")
    return wrong


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import path that comes back to where it started (one per circle, by depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_library_has_no_import_circle():
    assert circles(import_graph()) == []


def test_every_module_imports_only_its_own_layer_and_those_below():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_upward_and_a_sideways_import():
    graph = {"store.catalog": {"answer.passages", "text"}, "corpus.readers": {"backends.llm"}, "cli": {"store.index"}}
    assert upward_imports(graph) == ["corpus.readers -> backends.llm", "store.catalog -> answer.passages"]


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_chat_uses_only_the_public_api():
    private = {}
    for path in sorted((ROOT / "tui").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rag."):
                private[f"{path.relative_to(ROOT)}:{node.lineno}"] = node.module
            elif isinstance(node, ast.ImportFrom) and node.module == "rag":
                missing = [a.name for a in node.names if a.name not in rag.__all__]
                if missing:
                    private[f"{path.relative_to(ROOT)}:{node.lineno}"] = f"rag.{missing}"
    assert private == {}


def test_every_public_name_resolves():
    assert [name for name in rag.__all__ if getattr(rag, name, None) is None] == []
