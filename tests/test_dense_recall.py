"""A paper far from the rest of the corpus is still found by the dense search, however the index grew.

Chroma's HNSW graph (ef_search 100) misses such a paper once thousands of tightly clustered papers
were added after it: the case of a user who indexed a few papers, then a big corpus on other topics.
The vectors here are made to be that shape (a double embedder), the store and the index are real.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag import Assistant, Filters, Settings
from rag.answer.retrieve import Retriever

DIMENSION = 384
CLUSTERS = 40


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class ClusteredEmbedder:
    """Texts naming a `topic-N` word get that topic's own direction; every other text lands close to one of
    40 centres of one region (seeded by the text): a corpus of many near-duplicates far from the topics."""

    name = "clustered-double"
    dimension = DIMENSION
    max_tokens = 256

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        base = rng.normal(size=DIMENSION)
        self.centres = _unit(rng.normal(size=(CLUSTERS, DIMENSION)) + base * 0.6)
        self.topics = _unit(rng.normal(size=(8, DIMENSION)))

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        for i in range(len(self.topics)):
            if f"topic-{i}" in text:
                return _unit(self.topics[i] + rng.normal(size=DIMENSION) * 0.02)
        return _unit(self.centres[seed % CLUSTERS] + rng.normal(size=DIMENSION) * 0.05)

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, DIMENSION), np.float32)
        if progress:
            progress(len(texts))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _filler(start: int, n: int) -> list[dict]:
    return [
        {"title": f"Survey {i} of region {i}", "abstract": f"Measurements {i} of the region {i}."}
        for i in range(start, start + n)
    ]


@pytest.fixture
def grown_index(tmp_path: Path, rag_home: Path) -> Assistant:
    """Three papers on their own topics, then 1,200 and 2,000 clustered papers, in three ingests."""
    assistant = Assistant(Settings(home=rag_home), embedder=ClusteredEmbedder())
    first = [{"title": f"Paper on topic-{i}", "abstract": f"A study of topic-{i} alone."} for i in range(3)]
    assistant.ingest([_write(tmp_path / "first.jsonl", first)])
    assistant.ingest([_write(tmp_path / "second.jsonl", _filler(0, 1200))])
    assistant.ingest([_write(tmp_path / "third.jsonl", _filler(5000, 2000))])
    return assistant


@pytest.mark.slow
def test_a_paper_far_from_the_rest_is_found_after_the_index_grew(grown_index: Assistant) -> None:
    for i in range(3):
        hits = grown_index.search(f"what about topic-{i}?", k=5, mode="dense")
        assert hits and hits[0].title == f"Paper on topic-{i}", [h.title for h in hits]
        hits = grown_index.search(f"what about topic-{i}?", k=5)
        assert hits[0].title == f"Paper on topic-{i}"
    # under a filter too (the same exact scan, restricted to the papers the filter keeps)
    hits = grown_index.search("what about topic-1?", k=3, mode="dense", filters=Filters.of(source="first"))
    assert [h.title for h in hits][:1] == ["Paper on topic-1"]
    assert all("Paper on topic" in h.title for h in hits)


@pytest.mark.slow
def test_the_exact_scan_gives_what_chroma_gives_where_chroma_finds_it(grown_index: Assistant) -> None:
    retriever: Retriever = grown_index.retriever
    exact = retriever.exact_vectors()
    assert exact is not None and len(exact.ids) == grown_index.index.catalog.chunk_count()
    for row in (0, 1700, len(exact.ids) - 1):
        by_scan = exact.nearest(exact.unit[row], 10)
        by_chroma = grown_index.index.vectors.query(exact.unit[row], 10)
        assert by_scan[0][0] == exact.ids[row]
        if by_chroma[0][0] == exact.ids[row]:
            assert by_scan[0][1] == pytest.approx(by_chroma[0][1], abs=2e-3)  # the catalog keeps float16


def test_the_recall_check_reports_chunks_the_vector_store_does_not_return(tmp_path: Path, rag_home: Path) -> None:
    """`rag doctor`'s check: sampled chunks are looked up by their own vector in the store (its graph)."""
    assistant = Assistant(Settings(home=rag_home), embedder=ClusteredEmbedder())
    assistant.ingest([_write(tmp_path / "papers.jsonl", _filler(0, 120))])
    healthy = assistant.check_recall(sample=60)
    assert (healthy.sampled, healthy.found, healthy.missed, healthy.exact) == (60, 60, [], True)
    everything = assistant.retriever.exact_vectors()
    assert everything is not None
    lost = everything.ids[5:7]
    assistant.index.vectors.delete(lost)  # the store no longer returns them, as a graph that lost them
    check = assistant.check_recall(sample=1000)  # a sample larger than the index: every chunk once
    assert check.sampled == 120 and sorted(check.missed) == sorted(lost) and check.found == 118


@pytest.mark.parametrize(
    ("found", "exact", "status"),
    [(200, False, "ok"), (199, True, "ok"), (198, False, "warn"), (190, False, "fail")],
)
def test_doctor_fails_an_index_whose_dense_search_misses_chunks(found: int, exact: bool, status: str) -> None:
    from rag.answer.retrieve import RecallCheck
    from rag.doctor import DoctorReport, _recall

    report = DoctorReport()
    _recall(report, RecallCheck(200, found, ["p:1"] * (200 - found), exact, exact_mb=1465))
    (check,) = report.checks
    assert (check.name, check.status) == ("dense recall", status)
    assert f"{found} of 200" in check.detail
    if status != "ok":
        assert "RAG_EXACT_SEARCH_MB=1465" in check.detail


@pytest.mark.slow
def test_a_larger_index_goes_through_the_graph_unless_the_setting_allows_an_exact_search(
    tmp_path: Path, rag_home: Path
) -> None:
    papers = _write(tmp_path / "papers.jsonl", _filler(0, 300))
    small_limit = Assistant(Settings(home=rag_home, exact_search_mb=0.1), embedder=ClusteredEmbedder())
    small_limit.ingest([papers])  # 300 chunks of 384 float32: 0.44 MB
    assert small_limit.retriever.exact_vectors() is None
    check = small_limit.check_recall(sample=20)
    assert not check.exact and check.exact_mb == 1
    small_limit.close()
    roomy = Assistant(Settings(home=rag_home, exact_search_mb=1), embedder=ClusteredEmbedder())
    assert roomy.retriever.exact_vectors() is not None
    assert roomy.search("Survey 3 of region 3", k=3, mode="dense")
