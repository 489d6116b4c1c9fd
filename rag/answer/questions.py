"""What a question must be before anything searches for it or asks a model about it (no heavy imports:
`rag ask` checks the question before it decides where to answer it)."""

from __future__ import annotations

import re

from rag.errors import EmptyQuestionError

MAX_QUESTION_CHARS = 2000
_WORD = re.compile(r"[^\W_]")  # a letter or digit, in any script


def clean_question(question: str) -> tuple[str, bool]:
    """The question stripped and cut to a sane length; the flag says whether it was cut."""
    text = " ".join((question or "").split())
    if not text:
        raise EmptyQuestionError("the question is empty; type a question about the papers")
    if not _WORD.search(text):  # "?!?! ... ;;": nothing to search for, nothing to ask a model
        raise EmptyQuestionError(
            "the question has no words (only punctuation or symbols); type a question about the papers"
        )
    if len(text) > MAX_QUESTION_CHARS:
        return text[:MAX_QUESTION_CHARS], True
    return text, False
