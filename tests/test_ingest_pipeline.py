"""The ingest pipeline: batches embedded in the caller's thread and written in the index's writer thread.

Stopping it (Ctrl-C, the chat's Esc raising from the progress callback) keeps every batch that was
embedded, in commit order; an error of the writer reaches the caller; the next ingest completes it.
"""

from __future__ import annotations

import pytest

import rag.ingest.pipeline as rag_index
from rag import Assistant, Settings
from rag.store.vectors import VectorStore
from rag.testing import HashEmbedder, write_synthetic_corpus


class Stop(Exception):
    pass


def consistent(home) -> tuple[int, int, int]:
    """(papers, chunks, vectors) of the index; asserts that every catalogued chunk has its vector."""
    a = Assistant(Settings(home=home), embedder=HashEmbedder())
    try:
        catalog = a.index.catalog
        chunks, vectors = set(catalog.all_chunk_ids()), set(a.index.vectors.all_ids())
        assert chunks <= vectors
        return catalog.paper_count(), len(chunks), len(vectors)
    finally:
        a.close()


def test_stopping_mid_ingest_keeps_the_batches_embedded_and_the_next_ingest_finishes(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(rag_index, "PAPERS_PER_BATCH", 4)
    corpus = write_synthetic_corpus(tmp_path / "c.jsonl", 30)
    embedded: list[int] = []

    def progress(stage, advance, total):
        embedded.append(advance)
        if sum(embedded) >= 12:  # in the third batch of four one-chunk papers
            raise Stop

    a = Assistant(settings, embedder=HashEmbedder())
    with pytest.raises(Stop):
        a.ingest([corpus], progress=progress)
    a.close()
    papers, _chunks, _ = consistent(settings.home)
    assert papers == 8  # the two batches embedded before; the third stopped inside its embedding
    b = Assistant(Settings(home=settings.home), embedder=HashEmbedder())
    report = b.ingest([corpus])
    assert (report.added, report.unchanged) == (22, 8)
    b.close()
    assert consistent(settings.home)[:2] == (30, 30)


def test_a_write_error_reaches_the_caller_and_leaves_the_index_consistent(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(rag_index, "PAPERS_PER_BATCH", 4)
    corpus = write_synthetic_corpus(tmp_path / "c.jsonl", 30)
    calls = []
    real_add = VectorStore.add

    def failing_add(self, ids, vectors, *args, **kwargs):
        calls.append(len(ids))
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real_add(self, ids, vectors, *args, **kwargs)

    monkeypatch.setattr(VectorStore, "add", failing_add)
    a = Assistant(settings, embedder=HashEmbedder())
    with pytest.raises(OSError, match="Input/output"):
        a.ingest([corpus])
    a.close()
    assert consistent(settings.home)[:2] == (8, 8)  # two batches written, nothing after the failed one
    monkeypatch.setattr(VectorStore, "add", real_add)
    b = Assistant(Settings(home=settings.home), embedder=HashEmbedder())
    assert b.ingest([corpus]).added == 22
    b.close()
