"""Follow-up questions: does a question lean on the conversation, and what does it mean on its own?

No model call: a question that names its subject is searched as it is; one that says "it", "they",
"its", "this method" ... is about the paper the conversation is about (the first paper the last
answered question cited; a refusal never becomes the topic), and that paper's name replaces the
reference. An elliptic question ("And on COCO?") is read together with the question before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .text import acronyms, introduced_names, title_name
from .types import Answer, Paper

_PRONOUN = re.compile(r"\b(?:it|its|they|them|their|theirs)\b", re.IGNORECASE)
_REFERENCE = re.compile(
    r"\b(?:this|these|that|the|said|same)\s+(?:same\s+|proposed\s+|new\s+)?"
    r"(?P<noun>method|model|models|paper|approach|framework|system|technique|work|study|architecture|"
    r"algorithm|benchmark|dataset|tokenizer|network|pipeline|authors)\b",
    re.IGNORECASE,
)
# "Is it true that ...": an "it" that refers to nothing.
_EXPLETIVE = re.compile(
    r"\b(?:is|was|does|would|will|can|could) it (?:true|possible|necessary|needed|worth|better|feasible|enough|"
    r"required|matter|make sense)\b|\bit is (?:possible|true|necessary|known)\b",
    re.IGNORECASE,
)
_ELLIPSIS = re.compile(r"^(?:and|also|what about|how about|and what about|or)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Standalone:
    """The question as retrieval and the model see it, and the conversation's paper it is about (if any)."""

    text: str
    topic_id: str | None = None
    how: str = "as asked"


def leans_on_context(question: str) -> bool:
    """Does the question refer to something it does not name (it, they, this method, "and on X?")?"""
    if _PRONOUN.search(_EXPLETIVE.sub(" ", question)) or _ELLIPSIS.match(question.strip()):
        return True
    reference = _REFERENCE.search(question)
    return bool(reference) and not acronyms(question)


def topic_of(history: Sequence[Answer]) -> tuple[str, str] | None:
    """(paper id, title) of the conversation's paper: the first citation of the last answered question."""
    for answer in reversed(history):
        if not answer.refused and answer.citations:
            first = min(answer.citations, key=lambda c: c.key)
            return first.paper_id, first.title
    return None


def display_name(paper: Paper) -> str:
    """How to call a paper in a question: the name its title leads with or its abstract introduces,
    else its title in quotes."""
    name = title_name(paper.title) or next(iter(introduced_names(paper.abstract)), None)
    return name or f'the paper "{paper.title}"'


def _substitute(question: str, name: str) -> str:
    possessive = f"{name}'" if name.endswith("s") else f"{name}'s"

    def reference(match: re.Match) -> str:
        return f"the authors of {name}" if match.group("noun").lower() == "authors" else name

    text = _REFERENCE.sub(reference, question)

    def pronoun(match: re.Match) -> str:
        return possessive if match.group(0).lower() in ("its", "their", "theirs") else name

    return _PRONOUN.sub(pronoun, text)


def standalone(question: str, history: Sequence[Answer], papers: dict[str, Paper]) -> Standalone:
    """`question` made to stand on its own, given the earlier answers of the conversation."""
    if not history or not leans_on_context(question):
        return Standalone(question)
    topic = topic_of(history)
    if topic is None:
        # Nothing answered yet to refer to: read it with the question before it.
        previous = history[-1].standalone_question or history[-1].question
        return Standalone(f"{previous} {question}", None, "joined with the previous question")
    paper_id, title = topic
    paper = papers.get(paper_id)
    name = display_name(paper) if paper else f'the paper "{title}"'
    if _PRONOUN.search(_EXPLETIVE.sub(" ", question)) or _REFERENCE.search(question):
        return Standalone(_substitute(question, name), paper_id, f"refers to {name}")
    previous = next(
        (a.standalone_question or a.question for a in reversed(history) if not a.refused), history[-1].question
    )
    return Standalone(f"{previous} {question}", paper_id, "joined with the previous question")
