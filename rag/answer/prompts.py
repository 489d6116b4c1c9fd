"""Prompt templates from `prompts/*.txt`, checked at load time: each must use exactly its variables."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from rag.errors import PromptError

# One phrase for "no answer", shared by the prompt, the refusal gate, the CLI, the TUI and the tests.
CANNOT_ANSWER = "The corpus does not answer this question."

EXPECTED_VARIABLES: dict[str, set[str]] = {
    # No refusal instruction: with one, small models refuse answerable questions; refusal is the
    # system's job (relevance gate + citation checks), see rag/answer/passages.py and rag/answer/citations.py.
    "system": set(),
    "answer": {"passages", "question"},
    "passage": {"key", "title", "text"},
    "naive": {"passages", "question"},  # the naive-RAG baseline of `rag eval --baselines`
}


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    def render(self, **values: object) -> str:
        return self.text.format(**values)


def variables_of(text: str) -> set[str]:
    try:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        raise PromptError(f"bad template syntax: {exc}") from exc


def load_prompts(directory: Path) -> dict[str, Template]:
    templates = {}
    for name, expected in EXPECTED_VARIABLES.items():
        path = directory / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PromptError(
                f"prompt {path} is missing ({exc.strerror}); reinstall rag-abstracts, "
                "or set RAG_PROMPTS_DIR to a folder holding every template"
            ) from exc
        try:
            found = variables_of(text)
        except PromptError as exc:
            raise PromptError(f"prompt {path}: {exc}") from exc
        if found != expected:
            unknown, missing = sorted(found - expected), sorted(expected - found)
            raise PromptError(
                f"prompt {path}: unknown variables {unknown}, missing variables {missing} (expected {sorted(expected)})"
            )
        templates[name] = Template(name, text)
    return templates
