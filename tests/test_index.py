"""Ingest and retrieval against a real Chroma in a temp dir and the real MiniLM model."""

from __future__ import annotations

import json

import pytest

from rag import Assistant, CorpusError, Filters, IndexCorruptError, IndexMismatchError, IndexMissingError, Settings
from rag.backends.embeddings import Embedder


class CountingEmbedder(Embedder):
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, real: Embedder):
        super().__init__(real.name, batch_size=real.batch_size, cache_dir=real.cache_dir)
        self._backend = real.backend
        self.embedded = 0

    def encode(self, texts, progress=None):
        self.embedded += len(texts)
        return super().encode(texts, progress)


def test_ingest_then_search_finds_the_right_paper(assistant, small_corpus):
    report = assistant.ingest([small_corpus])
    assert (report.added, report.unchanged, report.problems) == (5, 0, [])
    hits = assistant.search("how much does the logical error rate drop with a larger code distance?", k=3)
    assert hits[0].title.startswith("Quantum Error Correction")
    assert hits[0].score > hits[1].score
    assert hits[0].dense_rank == 1 and hits[0].lexical_rank is not None
    # one passage per paper
    assert len({h.paper_id for h in hits}) == len(hits)
    stats = assistant.stats()
    assert (stats.papers, stats.chunks, stats.vectors) == (5, report.chunks_added, report.chunks_added)


def test_reingest_unchanged_embeds_nothing_and_changed_abstract_replaces_chunks(settings, embedder, small_corpus):
    counting = CountingEmbedder(embedder)
    a = Assistant(settings, embedder=counting)
    first = a.ingest([small_corpus])
    assert counting.embedded == first.chunks_added > 0

    counting.embedded = 0
    again = a.ingest([small_corpus])
    assert (again.added, again.replaced, again.unchanged, counting.embedded) == (0, 0, 5, 0)

    lines = (small_corpus / "small.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    record["abstract"] = "Corals in the Red Sea survive heat stress thanks to symbiotic algae. " * 3
    lines[2] = json.dumps(record)
    (small_corpus / "small.jsonl").write_text("\n".join(lines) + "\n")
    changed = a.ingest([small_corpus])
    assert (changed.added, changed.replaced, changed.unchanged) == (0, 1, 4)
    assert changed.chunks_removed >= 1
    assert counting.embedded == changed.chunks_added
    stats = a.stats()
    assert stats.papers == 5 and stats.chunks == stats.vectors
    hit = a.search("Red Sea corals symbiotic algae", k=1)[0]
    assert "Red Sea" in hit.text
    assert not any("satellite" in h.text for h in a.search("satellite sea-surface temperature", k=5))
    a.close()


def test_same_paper_from_two_files_is_stored_once_with_both_sources(assistant, small_corpus, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text((small_corpus / "small.jsonl").read_text().splitlines()[0] + "\n")
    assistant.ingest([small_corpus])
    report = assistant.ingest([other])
    assert (report.added, report.unchanged, report.sources_updated) == (0, 1, 1)
    hit = assistant.search("surface code superconducting", k=1)[0]
    assert hit.sources == [str(small_corpus / "small.jsonl"), str(other)]
    assert assistant.stats().papers == 5


def test_filters_by_source_and_year(assistant, small_corpus, tmp_path):
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        json.dumps(
            {
                "title": "Error Correction for Trapped Ions",
                "abstract": "Trapped-ion qubits use a colour code for error correction with a logical error rate below the physical one.",
                "year": 2024,
            }
        )
        + "\n"
    )
    assistant.ingest([small_corpus, extra])
    query = "quantum error correction logical error rate"
    assert {h.title for h in assistant.search(query, k=2)} >= {"Error Correction for Trapped Ions"}
    only_2023 = assistant.search(query, k=5, filters=Filters.of(year=2023))
    assert only_2023 and all(h.year == 2023 for h in only_2023)
    from_extra = assistant.search(query, k=5, filters=Filters.of(source="extra.jsonl"))
    assert [h.title for h in from_extra] == ["Error Correction for Trapped Ions"]
    assert assistant.search(query, k=5, filters=Filters.of(year=1990)) == []


def test_rebuild_starts_clean(assistant, small_corpus, tmp_path):
    assistant.ingest([small_corpus])
    one = tmp_path / "one.jsonl"
    one.write_text((small_corpus / "small.jsonl").read_text().splitlines()[1] + "\n")
    report = assistant.ingest([one], rebuild=True)
    assert report.added == 1
    assert assistant.stats().papers == 1


def test_nothing_ingestible_leaves_the_index_untouched(assistant, small_corpus, tmp_path):
    assistant.ingest([small_corpus])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(CorpusError, match="nothing could be ingested"):
        assistant.ingest([bad], rebuild=True)
    assert assistant.stats().papers == 5


def test_missing_index_and_model_mismatch(settings, embedder, small_corpus):
    a = Assistant(settings, embedder=embedder)
    with pytest.raises(IndexMissingError, match="rag ingest"):
        a.search("anything")
    a.ingest([small_corpus])
    a.index.catalog.set_meta({"embedding_model": "some-other-model"})
    a.close()
    b = Assistant(Settings(home=settings.home), embedder=embedder)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        b.search("anything")
    b.close()


def test_vectors_missing_from_chroma_are_detected(assistant, small_corpus):
    assistant.ingest([small_corpus])
    some = assistant.index.catalog.chunk_ids_of([assistant.search("protein folding", k=1)[0].paper_id])
    assistant.index.vectors.delete(some)
    assistant.index._checked_generation = None
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        assistant.search("protein folding")


def test_lost_lexical_index_is_rebuilt_from_the_catalog(settings, embedder, small_corpus):
    a = Assistant(settings, embedder=embedder)
    a.ingest([small_corpus])
    a.close()
    import shutil

    shutil.rmtree(settings.index_dir / "lexical")
    b = Assistant(Settings(home=settings.home), embedder=embedder)
    hits = b.search("traffic forecasting on road graphs", k=1, mode="lexical")
    assert hits[0].title == "Graph Neural Networks for Traffic Forecasting"
    b.close()


@pytest.mark.slow
def test_bundled_corpus_retrieval(bundled_home, embedder):
    a = Assistant(Settings(home=bundled_home), embedder=embedder)
    stats = a.stats()
    assert stats.papers == 453 and stats.chunks == stats.vectors > 453
    hits = a.search("a benchmark that tests whether retrieval models understand negation", k=5)
    assert "NevIR: Negation in Neural Information Retrieval" in [h.title for h in hits]
    a.close()
