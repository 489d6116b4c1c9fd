"""Start-up costs paid early: `Assistant.load` opens what the first search needs while the model loads."""

from __future__ import annotations

import pytest

from rag import Assistant, IndexMissingError, UnknownModelError
from rag.testing import ScriptedGenerator


def test_load_opens_the_index_so_the_first_search_pays_nothing_more(settings, hash_embedder, small_corpus):
    Assistant(settings, embedder=hash_embedder).ingest([small_corpus])
    a = Assistant(settings, embedder=hash_embedder, generator=ScriptedGenerator(["x"]))
    assert a.index._vectors is None and a.index._lexical is None  # a new process opens nothing until asked
    a.load()
    assert a.index._vectors is not None and a.index._lexical is not None
    assert a.index._checked_generation == a.index.catalog.generation  # the consistency check is done too
    hits = a.search("surface code logical error rate")
    assert hits and hits[0].title.startswith("Quantum Error Correction")
    a.close()


def test_load_without_an_index_still_loads_the_model_and_search_says_what_to_do(settings, hash_embedder):
    a = Assistant(settings, embedder=hash_embedder, generator=ScriptedGenerator(["x"]))
    assert a.load().name == "scripted"
    with pytest.raises(IndexMissingError, match="rag ingest"):
        a.search("anything at all")
    a.close()


def test_a_model_that_fails_to_load_is_reported_by_load(settings, hash_embedder, small_corpus):
    settings.models.model = "no-such-model"
    a = Assistant(settings, embedder=hash_embedder)
    a.ingest([small_corpus])
    with pytest.raises(UnknownModelError):
        a.load()
    assert a.search("surface code")  # the index is untouched and searchable
    a.close()
