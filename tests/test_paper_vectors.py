"""The paper side of retrieval: one whole-abstract vector per paper from a second model, fused with the
chunk embedder and BM25 (`rag.store.paper_vectors`, `rag.answer.retrieve.standardised_fusion`).

The paper model here is a double that knows a few concepts by several words (as a real model knows
paraphrases); the chunk embedder is the word-hashing double, so only the paper side can find a paper
from a question that shares no word with it. A real Chroma and catalog are used throughout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag import Assistant, Filters, Settings
from rag.answer.retrieve import standardised_fusion
from rag.ingest.pipeline import Ingester
from rag.testing import HashEmbedder

CONCEPTS = [
    {"mask", "masked", "masking", "hide", "hiding", "hidden", "conceal", "occlude"},
    {"image", "images", "picture", "pictures", "photo", "photos", "pixels"},
    {"retrieval", "search", "lookup", "find", "finding"},
    {"graph", "graphs", "network", "networks"},
    {"colour", "coloring", "colouring", "color"},
]


class ConceptEmbedder:
    """Texts are the sum of the concept directions their words name (a stand-in for a model of meaning)."""

    name = "concept-double"
    dimension = 16
    max_tokens = 512

    def __init__(self) -> None:
        self.calls = 0

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def _vector(self, text: str) -> np.ndarray:
        words = {w.strip(".,?!:;()").lower() for w in text.split()}
        v = np.zeros(self.dimension, dtype=np.float32)
        for i, concept in enumerate(CONCEPTS):
            if words & concept:
                v[i] = 1.0
        v[-1] = 0.05  # never the zero vector
        return v / np.linalg.norm(v)

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.calls += len(texts)
        out = np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)
        if progress:
            progress(len(texts))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


PAPERS = [
    (
        "Masked Autoencoders Are Scalable Vision Learners",
        "We mask random patches of the input image and reconstruct the missing pixels.",
    ),
    ("Learned Sparse Retrieval at Scale", "Sparse lexical representations make retrieval fast on inverted indexes."),
    ("Graph Colouring with Few Colours", "We bound the chromatic number of sparse graphs."),
    ("Protein Structure from Sequence", "Attention over residue pairs predicts folded structures."),
]
PARAPHRASE = "How do you pre-train by hiding parts of pictures?"
# Papers on other topics: a corpus of a few dozen, where one signal's certainty can stand out.
FILLERS = [
    (f"Survey {i} of {topic}", f"We measure {topic} in region {i} over several years.")
    for i, topic in enumerate(["soil erosion", "bird migration", "tax policy", "river floods"] * 8)
]


def _corpus(path: Path, papers=PAPERS + FILLERS) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers), encoding="utf-8")
    return path


def _assistant(home: Path, paper_embedder=None, **settings) -> Assistant:
    return Assistant(Settings(home=home, **settings), embedder=HashEmbedder(), paper_embedder=paper_embedder)


def test_a_paraphrase_sharing_no_word_with_its_paper_is_found_by_the_paper_side(tmp_path, rag_home):
    corpus = _corpus(tmp_path / "papers.jsonl")
    without = _assistant(rag_home)
    without.ingest([corpus])
    assert without.search(PARAPHRASE, k=1)[0].title != PAPERS[0][0]  # words alone do not find it
    without.close()
    with_papers = _assistant(rag_home, ConceptEmbedder())
    report = Ingester(with_papers.index).ingest([])  # an index from before the paper side gets its vectors
    assert report.paper_vectors_added == len(PAPERS + FILLERS)
    hits = with_papers.search(PARAPHRASE, k=3)
    assert hits[0].title == PAPERS[0][0]
    assert hits[0].paper_rank == 1 and hits[0].paper_score == pytest.approx(1.0, abs=0.01)
    # a search for the words of a paper still finds that paper first
    assert with_papers.search("chromatic number of sparse graphs", k=1)[0].title == PAPERS[2][0]


def test_each_paper_keeps_one_vector_through_new_replaced_and_unchanged_papers(tmp_path, rag_home):
    papers = ConceptEmbedder()
    a = _assistant(rag_home, papers)
    a.ingest([_corpus(tmp_path / "v1.jsonl")])
    catalog = a.index.catalog
    n = len(PAPERS + FILLERS)
    assert catalog.paper_vector_count() == catalog.paper_count() == n
    assert papers.calls == n
    changed = [(PAPERS[0][0], "We hide random patches of each photo and predict them."), *PAPERS[1:], *FILLERS]
    report = a.ingest([_corpus(tmp_path / "v2.jsonl", changed)])
    assert (report.replaced, report.unchanged) == (1, n - 1)
    assert papers.calls == n + 1  # only the replaced paper was embedded again
    catalog = a.index.catalog  # the index reopens after an ingest (which writes through its own connection)
    ids, vectors = catalog.all_paper_vectors()
    assert sorted(ids) == sorted(catalog.get_papers(ids)) and len(ids) == n  # the old version's is gone
    assert vectors.dtype == np.float16 and vectors.shape == (n, ConceptEmbedder.dimension)


def test_another_paper_model_replaces_every_vector_and_none_is_used_until_then(tmp_path, rag_home):
    a = _assistant(rag_home, ConceptEmbedder())
    a.ingest([_corpus(tmp_path / "papers.jsonl")])
    a.close()

    class Other(ConceptEmbedder):
        name = "another-double"

    other = Other()
    b = _assistant(rag_home, other)
    hits = b.search(PARAPHRASE, k=2)  # the index's vectors are another model's: not used
    assert all(h.paper_score is None for h in hits)
    assert Ingester(b.index).ingest([]).paper_vectors_added == len(PAPERS + FILLERS)
    assert b.index.catalog.get_meta("paper_model") == "another-double"
    assert b.search(PARAPHRASE, k=1)[0].paper_score is not None


def test_the_paper_side_keeps_to_the_filters(tmp_path, rag_home):
    a = _assistant(rag_home, ConceptEmbedder())
    a.ingest([_corpus(tmp_path / "vision.jsonl", PAPERS[:1]), _corpus(tmp_path / "other.jsonl", PAPERS[1:] + FILLERS)])
    assert a.search(PARAPHRASE, k=1)[0].title == PAPERS[0][0]
    hits = a.search(PARAPHRASE, k=3, filters=Filters.of(source="other"))
    assert hits and PAPERS[0][0] not in [h.title for h in hits]


def test_a_sure_signal_outweighs_two_unsure_ones():
    # the paper model puts "gold" far above the rest; the two others spread mild preferences, gold mid-pack
    sure = {"gold": 0.9, **{f"p{i}": 0.59 - 0.01 * i for i in range(30)}}
    unsure = {f"p{i}": 0.5 + 0.01 * i for i in range(30)} | {"gold": 0.645}
    fused = standardised_fusion([sure, unsure, dict(unsure)], depth=40)
    assert max(fused, key=fused.__getitem__) == "gold"
    by_ranks = {pid: sum(1 / (60 + r) for r in _ranks(pid, [sure, unsure, unsure])) for pid in sure}
    assert max(by_ranks, key=by_ranks.__getitem__) != "gold"  # reciprocal ranks would not pick it
    # a paper one signal did not list takes that signal's lowest listed score, not zero
    partial = standardised_fusion([{"a": 1.0, "b": 0.5}, {"a": 3.0}], depth=40)
    assert partial["a"] > partial["b"]
    # a single paper, or a flat list, neither divides by zero nor decides anything
    assert standardised_fusion([{"only": 0.7}, {"only": 2.0}], depth=40) == {"only": 0.0}
    flat = standardised_fusion([{"a": 0.5, "b": 0.5}], depth=40)
    assert flat == {"a": 0.0, "b": 0.0}


def _ranks(pid: str, signals: list[dict[str, float]]) -> list[int]:
    return [sorted(signal, key=lambda p: -signal[p]).index(pid) + 1 for signal in signals]
