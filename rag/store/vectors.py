"""The dense side: a Chroma collection that only ever receives our own vectors.

Embedded (`PersistentClient` under the data dir) by default, or a Chroma server (`HttpClient`)
when a URL is configured; the same calls either way.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import numpy as np

from rag.errors import IndexBusyError, IndexCorruptError, InputError, VectorStoreError
from rag.offline import enforce_offline
from rag.store.datadir import storage_problem

COLLECTION = "chunks"
DEFAULT_CHROMA_PORT = 8000
T = TypeVar("T")
# Chroma writes this next to its HNSW files with every snapshot; a segment folder without it holds
# only scratch files that Chroma re-creates from its log (in chroma.sqlite3) whenever it opens them.
SNAPSHOT_MARK = "index_metadata.pickle"
FileRecord = list[int]  # size, mtime_ns, ctime_ns, crc32
# SQLite's "busy" answers (codes 5 and 6) from Chroma's own database: another connection holds a
# lock. Transient: retried for up to BUSY_RETRY_S, and never taken for damage (an ingest removes a
# damaged store to re-embed it: a lock must never cost the user the vectors).
_BUSY = ("database is locked", "database is busy", "database table is locked", "(code: 5)", "(code: 6)")
BUSY_RETRY_S = 15.0


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _BUSY)


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


def _snapshot_dirs(path: Path) -> list[Path]:
    return sorted(mark.parent for mark in path.glob(f"*/{SNAPSHOT_MARK}"))


def file_manifest(path: Path) -> dict[str, FileRecord]:
    """Size, times and checksum of each file of Chroma's HNSW snapshots: the files it loads as they are.

    What Chroma guarantees (chroma 1.x, `rust/segment/src/local_hnsw.rs`): chroma.sqlite3 holds the
    log of every write; a segment's HNSW files are a snapshot of that log up to the seq id recorded
    in SQLite, written every `sync_threshold` writes together with `index_metadata.pickle`. A folder
    without that file is re-initialised from the log on every open, so its files are not recorded
    (`VectorStore.snapshot()` makes sure an ingest leaves none).
    """
    out: dict[str, FileRecord] = {}
    for folder in _snapshot_dirs(path):
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                stat = file.stat()
                out[str(file.relative_to(path))] = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, _crc32(file)]
    return out


def check_files(path: Path, manifest: dict[str, list[int]]) -> str | None:
    """What differs from the manifest written by the last complete ingest (None: nothing).

    Checked before Chroma opens the files: a damaged HNSW file can crash the process, not just fail.
    A file whose size, mtime and ctime are as recorded is trusted (ctime cannot be set back, so a
    write that restores the mtime still shows); any other is checksummed.
    """
    if not (path / "chroma.sqlite3").is_file():
        return f"{path / 'chroma.sqlite3'} is missing"
    snapshots = {name.split("/", 1)[0] for name in manifest if name.endswith(SNAPSHOT_MARK)}
    for name, record in manifest.items():
        if name.split("/", 1)[0] not in snapshots:
            continue  # scratch files listed by an older manifest: Chroma rebuilds them from its log
        file = path / name
        if not file.is_file():
            return f"{file} is missing"
        stat = file.stat()
        size, times, crc = record[0], record[1:-1], record[-1]
        if stat.st_size != size:
            return f"{file} has {stat.st_size} bytes, {size} were written"
        if [stat.st_mtime_ns, stat.st_ctime_ns][: len(times)] != times and _crc32(file) != crc:
            return f"{file} was changed after the last ingest"
    return None


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of `http[s]://host[:port]`; the port defaults to Chroma's 8000."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise InputError(f"RAG_CHROMA_URL {url!r} is not of the form http[s]://host:port")
    try:
        port = parts.port or DEFAULT_CHROMA_PORT
    except ValueError as exc:
        raise InputError(f"RAG_CHROMA_URL {url!r} has an invalid port") from exc
    return parts.hostname, port, parts.scheme == "https"


class VectorStore:
    """Chroma, embedded under `path`, or on the server at `url` (then `path` is unused)."""

    def __init__(
        self,
        path: Path,
        *,
        collection: str = COLLECTION,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.path = path
        self.url = url
        self.collection_name = collection
        self.headers = dict(headers or {})
        self._open()

    def _open(self) -> None:
        self._retry_busy(self._open_once)

    def _retry_busy(self, operation: Callable[[], T]) -> T:
        """`operation()`, again after a short wait while Chroma's database answers "busy"; still busy after
        BUSY_RETRY_S: an `IndexBusyError` (the store is fine, only in use)."""
        deadline, wait = time.monotonic() + BUSY_RETRY_S, 0.05
        while True:
            try:
                return operation()
            except IndexBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(wait)
                wait = min(wait * 2, 1.0)

    def _busy(self, doing: str) -> IndexBusyError:
        return IndexBusyError(
            f"the vector store in {self.path} could not be {doing}: its database stayed locked for "
            f"{BUSY_RETRY_S:.0f} s (another process or ingest is writing to it); try again when it has finished"
        )

    def _open_once(self) -> None:
        enforce_offline()
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        path, url = self.path, self.url
        # Telemetry off in both modes; allow_reset only where the files are ours.
        try:
            if url is None:
                self.client = chromadb.PersistentClient(
                    path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True)
                )
            else:
                from rag.store.chroma_http import http_client  # chromadb.HttpClient with a deadline on every request

                host, port, ssl = parse_chroma_url(url)
                self.client = http_client(host, port, ssl, self.headers)
            # embedding_function=None: Chroma must never embed anything itself (we always pass vectors).
            self.collection = self.client.get_or_create_collection(
                self.collection_name, metadata={"hnsw:space": "cosine"}, embedding_function=None
            )
        except InputError:
            raise
        except Exception as exc:
            if url is not None:
                raise self._server_error(exc) from exc
            if is_busy(exc):
                raise self._busy("opened") from exc
            if problem := storage_problem(exc, path):
                raise problem from exc
            raise IndexCorruptError(
                f"the vector store in {path} cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                "run `rag ingest` to re-embed the papers from the catalog"
            ) from exc

    def _server_error(self, exc: Exception) -> VectorStoreError:
        import httpx

        if isinstance(exc, httpx.TransportError) or "Could not connect" in str(exc):
            return VectorStoreError(
                f"the Chroma server at {self.url} does not answer ({type(exc).__name__}); "
                "start it (`chroma run --path DIR --port N`) or check RAG_CHROMA_URL"
            )
        return VectorStoreError(
            f"the Chroma server at {self.url} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:150]}; "
            "check the server's log and RAG_CHROMA_HEADERS"
        )

    def _call(self, operation: Callable[[], T]) -> T:
        """Run one collection call: a server's failures become one VectorStoreError; the embedded
        store's (damaged files) one IndexCorruptError; a locked database is waited for (see `is_busy`)."""
        return self._retry_busy(lambda: self._call_once(operation))

    def _call_once(self, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except Exception as exc:
            if self.url is not None:
                raise self._server_error(exc) from exc
            if is_busy(exc):
                raise self._busy("read or written") from exc
            if problem := storage_problem(exc, self.path):
                raise problem from exc
            first_line = (str(exc).splitlines() or [""])[0][:120]
            raise IndexCorruptError(
                f"the vector store in {self.path} is damaged ({type(exc).__name__}: {first_line}); "
                "run `rag ingest` to re-embed the papers from the catalog"
            ) from exc

    def count(self) -> int:
        return self._call(self.collection.count)

    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[dict] | None = None,
    ) -> None:
        """Store vectors (upsert: re-running a batch after a crash must not duplicate anything).

        The index sends ids and vectors only: the catalog holds the texts, and Chroma's copy of them
        (with a full-text index of every chunk that nothing reads) cost ~15% of the upsert time and
        60% of its disk (BENCHMARKS "Scale")."""
        extra: dict[str, list] = {}
        if texts is not None:
            extra["documents"] = list(texts)
        if metadatas is not None:
            extra["metadatas"] = list(metadatas)
        self._call(lambda: self.collection.upsert(ids=list(ids), embeddings=vectors.astype(np.float32), **extra))

    def snapshot(self) -> None:
        """Have Chroma write its HNSW snapshot of everything written so far (embedded store only).

        Chroma snapshots only every `sync_threshold` (1,000) writes; below that, the next process to
        open the collection would re-create the files from the log, so a read would rewrite them.
        Lowering the threshold to 1 and reopening makes Chroma replay the unsnapshotted writes and
        snapshot them at once; the threshold is then set back.
        """
        if self.url is not None:
            return
        threshold = (self.collection.configuration.get("hnsw") or {}).get("sync_threshold") or 1000
        self._call(lambda: self.collection.modify(configuration={"hnsw": {"sync_threshold": 1}}))
        self._reopen()
        self.count()  # the replay on first use writes the snapshot
        self._call(lambda: self.collection.modify(configuration={"hnsw": {"sync_threshold": threshold}}))
        self._reopen()

    def _reopen(self) -> None:
        self.close()
        self._open()

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        while batch := self._call(lambda: self.collection.get(include=[], limit=5000, offset=len(ids))["ids"]):
            ids.extend(batch)
        return ids

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these ids (those Chroma has)."""
        result = self._call(lambda: self.collection.get(ids=list(ids), include=["embeddings"]))
        embeddings = result["embeddings"]
        return {
            cid: np.asarray(v, dtype=np.float32)
            for cid, v in zip(result["ids"], embeddings if embeddings is not None else [])
        }

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            batch = list(ids[start : start + 1000])
            self._call(lambda: self.collection.delete(ids=batch))

    def query(self, vector: np.ndarray, k: int, ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity); among `ids` only, if given."""
        within = {"ids": list(ids)} if ids is not None else {}
        result = self._call(
            lambda: self.collection.query(
                query_embeddings=[vector.astype(np.float32)], n_results=k, include=["distances"], **within
            )
        )
        return [(cid, 1.0 - float(d)) for cid, d in zip(result["ids"][0], result["distances"][0])]

    def query_many(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        """The ids of the k nearest chunks of each row of `vectors` (one request)."""
        if not len(vectors):
            return []
        result = self._call(
            lambda: self.collection.query(query_embeddings=vectors.astype(np.float32), n_results=k, include=[])
        )
        return [list(ids) for ids in result["ids"]]

    def drop(self) -> None:
        """Delete the collection (a rebuild on a server: its files are not under the data dir)."""
        name = self.collection.name
        self._call(lambda: self.client.delete_collection(name))

    def close(self) -> None:
        """Release this client; Chroma stops the store (and frees its files) when no other client in the
        process uses the same path, so a reader and a writer in one process do not break each other."""
        self.client.close()
