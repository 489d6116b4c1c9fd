"""Follow-up questions: does a question lean on the conversation, and what does it mean on its own?

No model call: a question that names its subject is searched as it is; one that says "it", "they",
"its", "this method" ... is about the paper the conversation is about (the first paper the last
answered question cited; a refusal never becomes the topic), and that paper's name replaces the
first reference (the later ones read naturally after it: "what did Faster Segment Anything compare
it against?"). An elliptic question ("And on COCO?") is read together with the question before it.
A question that leans on a conversation it does not have ("what about its accuracy?" in a new chat)
and names nothing gets a question back instead of an answer (`needs_subject`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text import acronyms, introduced_names, names, title_name
from rag.types import Answer, Paper

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


def _references(question: str) -> list[re.Match]:
    """The words of `question` that refer to the conversation's paper, in order (not an expletive "it")."""
    expletives = [m.span() for m in _EXPLETIVE.finditer(question)]
    pronouns = [
        m for m in _PRONOUN.finditer(question) if not any(start <= m.start() < end for start, end in expletives)
    ]
    return sorted([*_REFERENCE.finditer(question), *pronouns], key=lambda m: m.start())


def _substitute(question: str, name: str) -> str:
    """The first reference replaced by the paper's name; the later ones then read as referring to it."""
    references = _references(question)
    if not references:
        return question
    first = references[0]
    word = first.group(0).lower()
    if first.re is _REFERENCE:
        replacement = f"the authors of {name}" if first.group("noun").lower() == "authors" else name
    elif word in ("its", "their", "theirs"):
        replacement = f"{name}'" if name.endswith("s") else f"{name}'s"
    else:
        replacement = name
    return question[: first.start()] + replacement + question[first.end() :]


_SHORT_QUESTION = 10  # words: a longer question describes its subject, whatever its pronouns
_LEADING_WORDS = 4  # a reference after this many words may point back into the question itself


@dataclass(frozen=True)
class Unresolved:
    """A question that refers to a paper it does not name, asked with no conversation to refer to."""

    word: str  # what it leans on: "its", "they", "this method"

    @property
    def reason(self) -> str:
        return f"the question says “{self.word}” but names no paper, and there is no earlier answer it could refer to"

    @property
    def clarification(self) -> str:
        return (
            f"Which paper do you mean? The question says “{self.word}” but names none, and this chat has no "
            "earlier answer to refer to. Ask again with the paper's name or its method (e.g. “What is "
            "SimMIM's accuracy?”)."
        )


# "the paper about X", "the method that Y": a reference that goes on to say what it refers to.
_DESCRIBED = re.compile(
    r"\s+(?:about|that|which|introducing|proposing|presenting|describing|called|named|titled)\b"
    r"|(?<=paper|study)\s+on\b|(?<=work)\s+on\b",
    re.IGNORECASE,
)


def needs_subject(question: str, history: Sequence[Answer]) -> Unresolved | None:
    """A first question ("what about its accuracy?", "who wrote the paper?") that refers to a paper
    it does not name: there is nothing to search for, so ask which paper. None if there is history
    or the question names anything (a method, a dataset: retrieval can work with it) or describes
    what it refers to ("who wrote the paper about X?")."""
    if history or names(question) or acronyms(question) or len(question.split()) > _SHORT_QUESTION:
        return None
    references = [r for r in _references(question) if not _DESCRIBED.match(question, r.end())]
    # Only a reference among its first words: later ones may point back inside the question itself
    # ("Which method ... and how fast is it?").
    if not references or len(question[: references[0].start()].split()) >= _LEADING_WORDS:
        return None
    return Unresolved(references[0].group(0))


_AUTHORS = re.compile(
    r"^\s*(?:who\s+(?:wrote|authored)\b"
    r"|who\s+(?:are|were|is|was)\s+(?:the|its|their)\s+(?:first\s+|last\s+|main\s+|lead\s+)?authors?\b"
    r"|(?:what|which)\s+(?:are|were)\s+(?:the\s+names\s+of\s+)?(?:the|its|their)\s+authors\b"
    r"|(?:list|name)\s+(?:the|its|their)\s+authors\b)",
    re.IGNORECASE,
)


def asks_for_authors(question: str) -> bool:
    """Does the question ask who wrote a paper ("who wrote it?", "who are the authors of SimMIM?")?"""
    return bool(_AUTHORS.search(question))


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
