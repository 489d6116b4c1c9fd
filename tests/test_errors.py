"""Errors leave the library typed, with one line that says what to do: the CLI and the chat show the same."""

from __future__ import annotations

import sqlite3

import pytest

from rag import Assistant, GenerationError, IndexCorruptError, Settings
from rag.testing import HashEmbedder, ScriptedGenerator
from rag.types import AnswerEvent

MALFORMED = sqlite3.DatabaseError("database disk image is\nmalformed")


@pytest.fixture
def hashed(rag_home, small_corpus):
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder(), generator=ScriptedGenerator(["A reply [1]."]))
    a.ingest([small_corpus])
    yield a
    a.close()


def fail(*args, **kwargs):
    raise MALFORMED


def test_a_damaged_catalog_page_met_late_is_an_index_corrupt_error(hashed, monkeypatch):
    monkeypatch.setattr(hashed.index.catalog, "get_papers", fail)
    with pytest.raises(
        IndexCorruptError, match=r"is damaged \(database disk image is malformed\); rebuild it .*`rag ingest --rebuild"
    ):
        hashed.get_papers(["x"])
    with pytest.raises(IndexCorruptError, match="rag ingest --rebuild") as caught:
        hashed.ask("How much does the logical error rate of the surface code fall?")
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(hashed.retriever, "search", fail)
    with pytest.raises(IndexCorruptError):
        hashed.search("surface code")
    with pytest.raises(IndexCorruptError):
        list(hashed.stream("surface code"))


def test_a_cancelled_answer_is_a_typed_error_not_an_assert(hashed, monkeypatch):
    from rag.answer.answering import AnswerStream

    def pipeline(cancel):
        yield AnswerEvent("sentence", "piece", 0.0)
        return None

    def cancelled(question, history=None):
        stream = AnswerStream(pipeline)
        stream.cancel()
        return stream

    monkeypatch.setattr(hashed, "stream", cancelled)
    with pytest.raises(GenerationError, match="cancelled"):
        hashed.ask("surface code")
