"""The index in the data dir: catalog (SQLite) + vectors (Chroma) + lexical (bm25s), kept in step.

This is the side that opens, checks and reads an index; `rag.ingest.pipeline` writes it (one process
at a time, under the data dir's file lock); readers see its last committed batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from rag.datafiles import IndexFiles
from rag.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, ModelError, RagError
from rag.protocols import Embedder
from rag.settings import Settings
from rag.store.catalog import Catalog
from rag.store.datadir import storage_problem
from rag.store.filters import PaperTable
from rag.store.lexical import LexicalIndex
from rag.store.locking import WriterLock
from rag.store.paper_vectors import PaperEmbedding
from rag.store.vectors import VectorStore, check_files

FORMAT_VERSION = "1"
QUICK_CHECK_MAX_BYTES = 32 << 20
# A rebuild writes `index.rebuild/` beside `index/`, marks it complete, then swaps the two folders.
COMPLETE = "REBUILD_COMPLETE"


def staging_dir(index_dir: Path) -> Path:
    return index_dir.with_name(index_dir.name + ".rebuild")


def retired_dir(index_dir: Path) -> Path:
    return index_dir.with_name(index_dir.name + ".old")


def finish_swap(index_dir: Path) -> None:
    """If a crash cut a rebuild's swap between its two renames, complete it (or put the old index back)."""
    if index_dir.exists():
        return
    staging, retired = staging_dir(index_dir), retired_dir(index_dir)
    source = staging if (staging / COMPLETE).exists() else retired if retired.exists() else None
    if source is not None:
        try:
            os.replace(source, index_dir)
        except OSError:
            pass  # another process finished it first


class IndexStats(BaseModel):
    home: str
    papers: int
    chunks: int
    vectors: int
    vector_store: str = "embedded"  # or the Chroma server's URL and collection
    embedding_model: str | None
    dimension: int | None
    sources: list[str]
    disk_bytes: int
    paper_model: str | None = None  # the model of the papers' whole-abstract vectors (`rag.store.paper_vectors`)
    paper_vectors: int = 0


class Index:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        *,
        directory: Path | None = None,
        collection: str | None = None,
        paper_embedder: Embedder | None = None,
    ):
        """The index in `settings.index_dir` (or in `directory`, for a rebuild's new index); with a
        `paper_embedder`, each paper also gets a whole-abstract vector (`rag.store.paper_vectors`)."""
        self.settings = settings
        self.embedder = embedder
        self.paper_embedder = paper_embedder
        self.papers = PaperEmbedding(paper_embedder) if paper_embedder is not None else None
        self.dir = directory or settings.index_dir
        self._collection = collection
        if directory is None:
            finish_swap(self.dir)
        self._catalog: Catalog | None = None
        self._vectors: VectorStore | None = None
        self._lexical: LexicalIndex | None = None
        self._papers: PaperTable | None = None
        self._checked_generation: int | None = None
        self.lock = WriterLock(settings.home, settings.store.lock_timeout)
        self.writing = False  # an ingest holds the writer lock: the lexical index is saved by it

    # --- opening --------------------------------------------------------------------------
    @property
    def catalog_path(self) -> Path:
        return IndexFiles(self.dir).catalog

    def exists(self) -> bool:
        return self.catalog_path.exists() and self.catalog.paper_count() > 0

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_problem(exc, self.dir) or IndexCorruptError(
                    f"cannot create the index folder {self.dir} ({exc.strerror}); check RAG_HOME"
                ) from exc
            self._catalog = Catalog(self.catalog_path)
        return self._catalog

    @property
    def collection_name(self) -> str:
        """The Chroma collection of this index (a rebuild on a server writes a new one beside the old)."""
        recorded = self.catalog.get_meta("chroma_collection") if self.catalog_path.exists() else None
        return recorded or self._collection or self.settings.store.chroma_collection

    @property
    def vectors_path(self) -> Path:
        return IndexFiles(self.dir).chroma

    @property
    def vectors(self) -> VectorStore:
        if self._vectors is None:
            s = self.settings
            damage = self.vector_damage() if self.catalog_path.exists() else None
            if damage:
                raise IndexCorruptError(
                    f"the vector store is damaged ({damage}); run `rag ingest` to re-embed the papers from the catalog"
                )
            self._vectors = VectorStore(
                self.vectors_path,
                collection=self.collection_name,
                url=s.store.chroma_url,
                headers=s.store.chroma_headers,
            )
        return self._vectors

    def vector_damage(self) -> str | None:
        """How the vector files differ from what the last complete ingest wrote (None: intact or unknown)."""
        if self.settings.store.chroma_url:
            return None  # a server's files are the server's business
        manifest = self.catalog.get_meta("vector_files")
        if self.catalog.get_meta("vector_state") != "clean" or not manifest:
            return None  # an ingest is running or was cut short: its next run repairs what it left
        return check_files(self.vectors_path, json.loads(manifest))

    def check_model(self) -> None:
        """The index must have been built by the embedding model we query it with."""
        recorded = self.catalog.get_meta("embedding_model")
        if recorded is None or recorded == self.embedder.name:
            return
        back = f"set RAG_EMBEDDING_MODEL={recorded} (or unset it if that is the default)"
        try:
            self.embedder.dimension  # noqa: B018 - a name that does not load must not be answered with "rebuild"
        except RagError as exc:
            raise ModelError(f"{exc}; the index in {self.dir} was built with {recorded!r}: {back}") from exc
        raise IndexMismatchError(
            f"the index was built with embedding model {recorded!r} but {self.embedder.name!r} is configured; "
            f"{back}, or re-embed the indexed papers with the new model: `rag ingest --rebuild` "
            "(the current index is kept until the new one is complete)"
        )

    def outdated_layout(self) -> str | None:
        """A one-line notice if the index's chunks were cut differently from what the settings ask (it still works)."""
        recorded = self.catalog.get_meta("chunk_tokens")
        if recorded is None or int(recorded) == self.settings.store.chunk_tokens:
            return None
        return (
            f"the index's chunks were cut at {recorded} word pieces, the settings ask for {self.settings.store.chunk_tokens} "
            "(RAG_CHUNK_TOKENS); `rag ingest --rebuild` re-embeds the indexed papers with the new size"
        )

    def open_for_search(self) -> None:
        """Check once per catalog generation that the index is there and consistent."""
        if self._catalog is not None and self._catalog.replaced():
            self.close()  # a rebuild in another process swapped a new index in
        if self._checked_generation is not None and self._checked_generation == self.catalog.generation:
            return
        if not self.catalog_path.exists() or self.catalog.paper_count() == 0:
            raise IndexMissingError(f"no index in {self.dir}; run `rag ingest`")
        self.check_model()
        self.catalog.check_integrity(max_bytes=QUICK_CHECK_MAX_BYTES)  # ingest and `rag doctor` check any size
        chunks, vectors = self.catalog.chunk_count(), self.vectors.count()
        # More vectors than chunks is a batch in flight or cut short: those are never shown.
        if vectors < chunks:
            raise IndexCorruptError(
                f"the index is inconsistent ({chunks} chunks in the catalog, {vectors} vectors); "
                "run `rag ingest` to repair it or `rag ingest --rebuild`"
            )
        self._checked_generation = self.catalog.generation

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index, rebuilt from the catalog whenever it lags behind it."""
        generation = self.catalog.generation
        if self._lexical is None or self._lexical.generation != generation:
            path = IndexFiles(self.dir).lexical
            lexical = LexicalIndex.load(path)
            if lexical is None or lexical.generation != generation:
                rows = self.catalog.iter_papers()
                lexical = LexicalIndex.build(
                    [pid for pid, _, _ in rows], [f"{title}. {abstract}" for _, title, abstract in rows], generation
                )
                self._save_lexical(lexical, path)
            self._lexical = lexical
        return self._lexical

    def paper_table(self, lexical: LexicalIndex) -> PaperTable:
        """Years and sources of the papers in `lexical`'s order (for filters), read once per catalog state."""
        key = (lexical.generation, self.catalog.sources_version)
        if self._papers is None or self._papers.key != key or self._papers.doc_ids is not lexical.doc_ids:
            self._papers = PaperTable.load(self.catalog, key, lexical.doc_ids, lexical.position)
        return self._papers

    def _save_lexical(self, lexical: LexicalIndex, path: Path) -> None:
        """Saved by the writer; a reader saves it only while no ingest runs (else it keeps it in memory)."""
        if self.writing:
            lexical.save(path)
            return
        with self.lock.try_hold() as free:
            if free:
                lexical.save(path)

    def close_vectors(self) -> None:
        """Let go of the vector store (a writer that removes damaged vector files first)."""
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None

    def close(self) -> None:
        self.close_vectors()
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self._lexical = None
        self._papers = None
        self._checked_generation = None

    # --- stats ----------------------------------------------------------------------------
    def stats(self) -> IndexStats:
        if not self.catalog_path.exists():
            raise IndexMissingError(f"no index in {self.dir}; run `rag ingest`")
        catalog = self.catalog
        disk = sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())
        dimension = catalog.get_meta("dimension")
        return IndexStats(
            home=str(self.settings.home),
            papers=catalog.paper_count(),
            chunks=catalog.chunk_count(),
            vectors=self.vectors.count(),
            vector_store=f"{self.settings.store.chroma_url} ({self.settings.store.chroma_collection})"
            if self.settings.store.chroma_url
            else "embedded",
            embedding_model=catalog.get_meta("embedding_model"),
            dimension=int(dimension) if dimension else None,
            sources=catalog.source_names(),
            disk_bytes=disk,
            paper_model=catalog.get_meta("paper_model"),
            paper_vectors=catalog.paper_vector_count(),
        )


__all__ = ["Index", "IndexStats"]
