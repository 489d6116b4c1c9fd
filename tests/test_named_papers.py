"""A paper asked about by its own name is found first and passes the relevance gate."""

from __future__ import annotations

import pytest

from rag import Assistant, Settings
from rag.answer.passages import relevant
from rag.corpus.readers import dedupe, read_corpus
from rag.text import name_spans, title_name
from rag.types import normalise_text


def method_names() -> dict[str, list[str]]:
    """Every name a bundled title leads with ("SimMIM: ...") that reads as a name, with its papers' titles."""
    out: dict[str, list[str]] = {}
    for paper in dedupe(read_corpus(None).papers):
        lead = title_name(paper.title)
        if lead and lead in name_spans(f"What is {lead}?"):
            out.setdefault(lead, []).append(paper.title)
    return out


def test_there_are_names_to_ask_about():
    assert len(method_names()) > 100


def test_what_is_name_finds_the_named_paper_first_and_passes_the_gate(bundled_home, embedder):
    assistant = Assistant(Settings(home=bundled_home), embedder=embedder)
    failures = []
    for name, titles in method_names().items():
        question = f"What is {name}?"
        hits = assistant.search(question, k=5)
        top = {normalise_text(h.title) for h in hits[: len(titles)]}
        if top != {normalise_text(t) for t in titles}:
            failures.append(f"{question} -> {hits[0].title if hits else None}")
        elif not relevant(question, hits, assistant.settings):
            failures.append(f"{question} was refused by the gate")
    assistant.close()
    assert not failures, failures


@pytest.mark.parametrize("question", ["What is the capital of France?", "Who won the football World Cup in 2018?"])
def test_off_topic_questions_do_not_pass_the_gate(bundled_home, embedder, question):
    assistant = Assistant(Settings(home=bundled_home), embedder=embedder)
    hits = assistant.search(question, k=5)
    assert not relevant(question, hits, assistant.settings), [(h.title, h.dense_score) for h in hits]
    assistant.close()
