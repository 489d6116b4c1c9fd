"""The dense side: a Chroma collection that only ever receives our own vectors."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError
from .offline import enforce_offline

COLLECTION = "chunks"
FileRecord = tuple[int, int, int]  # size, mtime_ns, crc32


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


def file_manifest(path: Path) -> dict[str, FileRecord]:
    """Size, mtime and checksum of Chroma's vector-index files (not its SQLite file, which reads touch)."""
    out: dict[str, FileRecord] = {}
    for file in sorted(path.rglob("*")):
        if file.is_file() and not file.name.startswith("chroma.sqlite3"):
            stat = file.stat()
            out[str(file.relative_to(path))] = (stat.st_size, stat.st_mtime_ns, _crc32(file))
    return out


def check_files(path: Path, manifest: dict[str, list[int]]) -> str | None:
    """What differs from the manifest written by the last complete ingest (None: nothing).

    Checked before Chroma opens the files: a damaged HNSW file can crash the process, not just fail.
    """
    if not (path / "chroma.sqlite3").is_file():
        return f"{path / 'chroma.sqlite3'} is missing"
    for name, (size, mtime_ns, crc) in manifest.items():
        file = path / name
        if not file.is_file():
            return f"{file} is missing"
        stat = file.stat()
        if stat.st_size != size:
            return f"{file} has {stat.st_size} bytes, {size} were written"
        if stat.st_mtime_ns != mtime_ns and _crc32(file) != crc:
            return f"{file} was changed after the last ingest"
    return None


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
                f"the vector store in {path} cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                "run `rag ingest` to re-embed the papers from the catalog"
            ) from exc

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Chroma's own errors (a damaged store) become one clear message."""
        try:
            yield
        except Exception as exc:
            raise IndexCorruptError(
                f"the vector store in {self.path} is damaged ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                "run `rag ingest` to re-embed the papers from the catalog"
            ) from exc

    def count(self) -> int:
        with self._guard():
            return self.collection.count()

    def add(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        # upsert: re-running a batch after a crash must not duplicate anything.
        with self._guard():
            self.collection.upsert(
                ids=list(ids), embeddings=vectors.astype(np.float32), documents=list(texts), metadatas=list(metadatas)
            )

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        with self._guard():
            while batch := self.collection.get(include=[], limit=5000, offset=len(ids))["ids"]:
                ids.extend(batch)
        return ids

    def delete(self, ids: Sequence[str]) -> None:
        with self._guard():
            for start in range(0, len(ids), 1000):
                self.collection.delete(ids=list(ids[start : start + 1000]))

    def query(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity)."""
        with self._guard():
            result = self.collection.query(
                query_embeddings=[vector.astype(np.float32)], n_results=k, include=["distances"]
            )
        return [(cid, 1.0 - float(d)) for cid, d in zip(result["ids"][0], result["distances"][0])]

    def close(self) -> None:
        # Chroma caches one system per path; drop it so the files can be removed or reopened.
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
