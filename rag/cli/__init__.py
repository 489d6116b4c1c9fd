"""The `rag` command: a thin layer over `rag.Assistant` (answers to stdout, diagnostics to stderr)."""

from __future__ import annotations

from rag.cli import answer_commands, index_commands  # noqa: F401 - each module adds its commands to `cli`
from rag.cli.context import cli
from rag.cli.output import progress_bar


def main() -> None:
    cli(obj={})


__all__ = ["cli", "main", "progress_bar"]
