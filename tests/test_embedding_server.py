"""Embeddings from an OpenAI-compatible server (`RAG_EMBEDDING_MODEL=openai:NAME`): requests in
flight, order, retries, and an ingest whose server fails for good mid-run (kept, then resumed).

The server is `rag.testing.FakeEmbeddingServer`, a real HTTP server on loopback answering with
deterministic vectors; the index is the real one (Chroma, catalog, BM25).
"""

from __future__ import annotations

import time
import types

import numpy as np
import pytest
from click.testing import CliRunner

import rag.backends.openai_server
import rag.ingest.pipeline as rag_index
from rag import Assistant, ModelError, Settings
from rag.backends.remote_embeddings import OpenAIEmbedder
from rag.cli import cli
from rag.testing import FakeEmbeddingServer, HashEmbedder, write_arxiv_snapshot

TEXTS = [f"passage {i} about marker zq{i}x and retrieval" for i in range(40)]


@pytest.fixture
def server():
    with FakeEmbeddingServer(latency_s=0.02) as s:
        yield s


@pytest.fixture
def backoffs(monkeypatch) -> list[float]:
    """The clients' clock: the seconds each retry would wait are recorded, not waited for."""
    slept: list[float] = []
    clock = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith("_")})
    clock.sleep = slept.append
    monkeypatch.setattr(rag.backends.openai_server, "time", clock)
    return slept


def test_requests_in_flight_follow_the_concurrency_and_vectors_keep_the_input_order(server):
    expected = HashEmbedder(64).encode(TEXTS)
    for concurrency in (1, 4):
        embedder = OpenAIEmbedder("fake", server.url, batch_size=3, concurrency=concurrency, retries=0)
        server.reset_counts()
        vectors = embedder.encode(TEXTS)
        embedder.close()
        assert server.max_in_flight == concurrency and server.answered == 14  # 40 texts, 3 a request
        np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_transient_failures_are_retried_and_a_lasting_one_is_one_error(server, backoffs):
    embedder = OpenAIEmbedder("fake", server.url, batch_size=8, concurrency=2, retries=2)
    server.fail_next(2, status=500)  # a crashed worker, twice
    assert embedder.encode(TEXTS).shape == (40, 64)
    assert server.refused == 2 and server.answered == 5
    assert len(backoffs) == 2 and set(backoffs) <= {0.5, 1.0}  # one wait before each retry
    server.fail_after(1, status=503)
    with pytest.raises(ModelError, match=r"embedding server at .* answered HTTP 503 to /v1/embeddings"):
        embedder.encode(TEXTS)
    embedder.close()


def ingest(home, server, corpus):
    env = {
        "RAG_EMBEDDING_MODEL": "openai:fake",
        "RAG_EMBEDDING_BASE_URL": server.url,
        "RAG_EMBEDDING_CONCURRENCY": "2",
        "RAG_EMBED_BATCH_SIZE": "2",
        "RAG_REQUEST_RETRIES": "1",
        "RAG_PAPER_EMBEDDING_MODEL": "",  # no local model of whole abstracts: this is about the server
    }
    return CliRunner(env=env).invoke(cli, ["--home", str(home), "ingest", str(corpus)], obj={})


def index_content(home, server) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    settings = Settings(
        home=home, embedding_model="openai:fake", embedding_base_url=server.url, paper_embedding_model=""
    )
    a = Assistant(settings)
    try:
        chunk_ids = sorted(a.index.catalog.all_chunk_ids())
        vectors = a.index.vectors.get_vectors(chunk_ids)
        assert sorted(a.index.vectors.all_ids()) == chunk_ids  # no vector without its chunk, none missing
        hits = a.search("zq17x effect", k=1)
        assert hits and hits[0].title == "Study 17 of marker zq17x"
        return sorted(p.paper_id for p in a.index.catalog.all_papers()), chunk_ids, vectors
    finally:
        a.close()


def test_a_server_failing_mid_ingest_keeps_what_was_embedded_and_the_rerun_completes_it(
    server, tmp_path, monkeypatch, backoffs
):
    monkeypatch.setattr(rag_index, "PAPERS_PER_BATCH", 4)  # x concurrency 2: 8 papers a batch, 4 requests
    corpus = write_arxiv_snapshot(tmp_path / "arxiv.json", 120)
    server.fail_after(1 + 5 * 4)  # the dimension probe and five batches are answered, then HTTP 500 for good
    result = ingest(tmp_path / "home", server, corpus)
    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("Error: the embedding server at http://127.0.0.1:")
    assert "answered HTTP 500 to /v1/embeddings" in error[0]
    assert server.max_in_flight == 2
    settings = Settings(
        home=tmp_path / "home", embedding_model="openai:fake", embedding_base_url=server.url, paper_embedding_model=""
    )
    a = Assistant(settings)
    assert a.index.catalog.paper_count() == 40  # the five batches embedded before the failure
    a.close()

    server.heal()
    result = ingest(tmp_path / "home", server, corpus)
    assert result.exit_code == 0, result.output
    assert "120 unique: 80 added, 0 replaced, 40 unchanged (80 chunks embedded)" in result.stderr
    assert ingest(tmp_path / "home", server, corpus).stderr.count("0 added, 0 replaced, 120 unchanged") == 1

    result = ingest(tmp_path / "reference", server, corpus)  # the same corpus without a failure
    assert result.exit_code == 0, result.output
    resumed, reference = index_content(tmp_path / "home", server), index_content(tmp_path / "reference", server)
    assert resumed[0] == reference[0] and len(resumed[0]) == 120
    assert resumed[1] == reference[1] and len(resumed[1]) == 120
    for chunk_id in reference[1]:
        np.testing.assert_allclose(resumed[2][chunk_id], reference[2][chunk_id], atol=1e-6)
