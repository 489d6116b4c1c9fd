"""The import contract: no circle in the library's import graph (function-level imports included),
and the chat (tui/) uses the library only through its public names (`from rag import ...`)."""

from __future__ import annotations

import ast
from pathlib import Path

import rag

ROOT = Path(__file__).parent.parent


def _imports(path: Path) -> set[str]:
    """The rag modules a file imports, at any depth of its code (rag.x.y counts as rag.x)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                out.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.module and node.module.startswith("rag."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("rag."))
    return out


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in (ROOT / "rag").glob("*.py")}
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


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
