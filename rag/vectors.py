"""The dense side: a Chroma collection that only ever receives our own vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError
from .offline import enforce_offline

COLLECTION = "chunks"


class VectorStore:
    """Chroma, embedded (`PersistentClient` under the data dir)."""

    def __init__(self, path: Path):
        enforce_offline()
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.path = path
        try:
            self.client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True)
            )
            self.collection = self.client.get_or_create_collection(
                COLLECTION, metadata={"hnsw:space": "cosine"}, embedding_function=None
            )
        except Exception as exc:
            raise IndexCorruptError(
                f"the vector store in {path} cannot be opened ({type(exc).__name__}: {str(exc)[:120]}); "
                "run `rag ingest --rebuild`"
            ) from exc

    def count(self) -> int:
        return self.collection.count()

    def add(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        # upsert: re-running a batch after a crash must not duplicate anything.
        self.collection.upsert(
            ids=list(ids), embeddings=vectors.astype(np.float32), documents=list(texts), metadatas=list(metadatas)
        )

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            self.collection.delete(ids=list(ids[start : start + 1000]))

    def query(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity)."""
        result = self.collection.query(
            query_embeddings=[vector.astype(np.float32)], n_results=k, include=["distances"]
        )
        return [(cid, 1.0 - float(d)) for cid, d in zip(result["ids"][0], result["distances"][0])]

    def close(self) -> None:
        # Chroma caches one system per path; drop it so the files can be removed or reopened.
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
