"""Remake the vectors shipped for the bundled corpus (`rag/data/vectors/*.npz`, see `rag.store.precomputed`).

Runs a real ingest of the bundled corpus into a scratch data dir with the packaged models, records
every text each model embeds and its vector, and writes them as the shipped files. Run it when the
bundled corpus, the chunking, an embedding model or its export/quantisation recipe changes
(`tests/test_precomputed.py` fails when the shipped vectors no longer match fresh ones).

    RAG_MODELS_HOME=<models dir> python benchmarks/bundled_vectors.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag import Assistant, Settings
from rag.backends.embeddings import make_embedder
from rag.store.paper_vectors import make_paper_embedder
from rag.store.precomputed import Precomputed, vectors_file, write


class Recorder:
    """An embedder that records what it embeds (the `Embedder` protocol, passed through)."""

    def __init__(self, inner):
        self.inner = inner
        self.texts: list[str] = []
        self.vectors: list[np.ndarray] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        vectors = self.inner.encode(texts, progress=progress)
        self.texts.extend(texts)
        self.vectors.extend(vectors)
        return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["chunks", "papers"], help="remake one model's file (the other's is used)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        chunks, papers = Recorder(make_embedder(settings)), Recorder(make_paper_embedder(settings))
        remade = {"chunks": [chunks], "papers": [papers]}.get(args.only or "", [chunks, papers])
        for recorder in remade:
            vectors_file(recorder.name).unlink(missing_ok=True)  # embed everything afresh
        Precomputed.shipped.cache_clear()
        started = time.perf_counter()
        report = Assistant(settings, embedder=chunks, paper_embedder=papers).ingest()
        print(
            f"ingest: {report.unique_papers} papers, {report.chunks_added} chunks in {time.perf_counter() - started:.0f} s"
        )
        for recorder in remade:
            path = write(recorder.name, recorder.texts, np.stack(recorder.vectors))
            print(f"{path}: {len(recorder.texts)} vectors, {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
