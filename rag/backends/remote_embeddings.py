"""`/embeddings` of an OpenAI-compatible server as an embedder (batched, several requests in flight)."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag.backends.openai_server import DEADLINE_S, MAX_RESPONSE_BYTES, OpenAIServer, api_root
from rag.datafiles import IndexFiles
from rag.errors import ModelError
from rag.setting_groups import REMOTE_PREFIX
from rag.settings import Settings


def _indexed_dimension(index_dir: Path, model: str) -> int | None:
    """The dimension of the vectors the index in `index_dir` holds, if `model` embedded them (else None).

    Read from the catalog's meta table, read-only: this runs before the index is opened."""
    catalog = IndexFiles(index_dir).catalog
    if not catalog.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{catalog.as_uri()}?mode=ro", uri=True)) as db:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimension')"))
    except sqlite3.Error:
        return None  # the index reports its own damage when it opens
    if meta.get("embedding_model") != model or not str(meta.get("dimension", "")).isdigit():
        return None
    return int(meta["dimension"])


class OpenAIEmbedder:
    """Sentence embeddings from an OpenAI-compatible `/embeddings` endpoint (`RAG_EMBEDDING_MODEL=openai:NAME`).

    Same interface as `rag.backends.embeddings.Embedder`. Chunks are still sized with the tokenizer of the
    packaged all-MiniLM-L6-v2 (loaded with `tokenizers`, no torch): the OpenAI API exposes no
    tokenizer, and a 160-word-piece chunk stays far inside the 512+ token windows of served
    embedding models, whatever their own tokenizer counts.

    `encode` keeps `concurrency` requests of `batch_size` texts in flight (a GPU server batches
    concurrent requests; one at a time leaves it idle while each reply travels back); the vectors
    come back in input order. A failed request is retried with backoff (`retries`); if it still
    fails, `encode` raises and the requests not yet sent are dropped.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        deadline: float = DEADLINE_S,
        max_bytes: int = MAX_RESPONSE_BYTES,
        retries: int = 2,
        batch_size: int = 16,
        concurrency: int = 4,
        index_dir: Path | None = None,
    ):
        self.model = model
        self.name = REMOTE_PREFIX + model
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.engine = f"server {api_root(base_url)}"
        self.server = OpenAIServer(
            base_url,
            api_key=api_key,
            timeout=timeout,
            deadline=deadline,
            max_bytes=max_bytes,
            retries=retries,
            what="embedding",
            setting="RAG_EMBEDDING_BASE_URL",
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # The index this embedder's queries search (see `encode_query`); checked until it matched once.
        self.index_dir = index_dir

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> OpenAIEmbedder:
        base_url = settings.models.embedding_base_url or settings.models.base_url
        if not base_url:
            raise ModelError(
                f"embedding model {REMOTE_PREFIX}{model} needs the server's URL: set RAG_EMBEDDING_BASE_URL"
            )
        return cls(
            model,
            base_url,
            **OpenAIServer.options(settings),
            batch_size=settings.models.embed_batch_size,
            concurrency=settings.models.embedding_concurrency,
            index_dir=settings.index_dir,
        )

    @functools.cached_property
    def _tokenizer(self):
        from tokenizers import Tokenizer

        from rag.backends.embedding_packages import MINILM, packaged_folder

        tokenizer = Tokenizer.from_file(str(packaged_folder(MINILM, None) / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    @functools.cached_property
    def dimension(self) -> int:
        return int(self.encode(["dimension probe"])[0].shape[0])

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit vectors, one per text, in order; `progress(n)` after each batch (in order)."""
        rows: list[np.ndarray] = []
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        for batch, batch_vectors in zip(batches, self._embed_all(batches)):
            rows.extend(batch_vectors)
            if progress:
                progress(len(batch))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len({row.shape[0] for row in rows}) != 1:
            raise self.server.garbage("embeddings of different lengths", ModelError)
        vectors = np.stack(rows).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise self.server.garbage("zero or non-finite embeddings", ModelError)
        return vectors / norms

    def encode_query(self, text: str) -> np.ndarray:
        """A query's vector, checked against the index it will search: the same model name on a server
        can come to mean another model (a server restarted with other weights), and its vectors would
        not fit the index (Chroma would call the store damaged)."""
        vector = self.encode([text])[0]
        if self.index_dir is not None:
            indexed = _indexed_dimension(self.index_dir, self.name)
            if indexed is not None and indexed != vector.shape[0]:
                raise ModelError(
                    f"the embedding model {self.name} on {self.server.root} now makes {vector.shape[0]}-d vectors, "
                    f"but the index in {self.index_dir} holds {indexed}-d ones from it: the server's model changed. "
                    f"Serve the model the index was built with again (check {self.server.setting}), or re-embed the "
                    "indexed papers with the new one: rag ingest --rebuild"
                )
            if indexed is not None:
                self.index_dir = None  # checked: the rest of this process's queries go straight through
        return vector

    def _embed_all(self, batches: list[list[str]]) -> Iterator[list[np.ndarray]]:
        """The vectors of each batch, in order, with up to `concurrency` requests in flight."""
        if self.concurrency == 1 or len(batches) <= 1:
            yield from map(self._embed_batch, batches)
            return
        pool = self._executor()
        futures = [pool.submit(self._embed_batch, batch) for batch in batches]
        try:
            for future in futures:
                yield future.result()
        finally:  # on an error (or a caller that stops early): send nothing more
            for future in futures:
                future.cancel()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="rag-embed")
            return self._pool

    def _embed_batch(self, batch: list[str]) -> list[np.ndarray]:
        body = self.server.post_json("embeddings", {"model": self.model, "input": batch}, idempotent=True)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise self.server.garbage(f"/embeddings returned no list of {len(batch)} embeddings", ModelError)
        try:
            ordered = sorted(data, key=lambda item: item.get("index", 0))
            vectors = [np.asarray(item["embedding"], dtype=np.float64) for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self.server.garbage("/embeddings items without a numeric embedding", ModelError) from None
        out = []
        for vector in vectors:
            if vector.ndim == 2 and vector.shape[0] > 0:
                # llama-cpp-python's server returns one vector per token for models whose GGUF
                # declares no pooling (chat models): mean-pool them, as all-MiniLM-L6-v2 does.
                vector = vector.mean(axis=0)
            if vector.ndim != 1 or vector.shape[0] == 0:
                raise self.server.garbage("/embeddings items that are not vectors", ModelError)
            out.append(vector)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self.server.close()
