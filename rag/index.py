"""The index in the data dir: catalog (SQLite) + vectors (Chroma) + lexical (bm25s), kept in step.

Ingest is incremental and crash-safe: papers are embedded and committed in batches, the vectors
first and the catalog last, so a batch either is in the catalog with its vectors or is redone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from .catalog import Catalog
from .chunking import chunk_paper
from .embeddings import Embedder
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, RagError
from .lexical import LexicalIndex
from .settings import Settings
from .types import Chunk, Paper
from .vectors import VectorStore

# progress(stage, advance, total): stage is "embed"; total is known from the first call.
Progress = Callable[[str, int, int], None]
FORMAT_VERSION = "1"
PAPERS_PER_BATCH = 64


class IngestReport(BaseModel):
    files: int = 0
    papers_read: int = 0
    unique_papers: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    sources_updated: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0


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


class Index:
    def __init__(self, settings: Settings, embedder: Embedder):
        self.settings = settings
        self.embedder = embedder
        self.dir = settings.index_dir
        self._catalog: Catalog | None = None
        self._vectors: VectorStore | None = None
        self._lexical: LexicalIndex | None = None
        self._checked_generation: int | None = None

    # --- opening --------------------------------------------------------------------------
    @property
    def catalog_path(self) -> Path:
        return self.dir / "catalog.sqlite"

    def exists(self) -> bool:
        return self.catalog_path.exists() and self.catalog.paper_count() > 0

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._catalog = Catalog(self.catalog_path)
        return self._catalog

    @property
    def vectors(self) -> VectorStore:
        if self._vectors is None:
            s = self.settings
            self._vectors = VectorStore(
                self.dir / "chroma", collection=s.chroma_collection, url=s.chroma_url, headers=s.chroma_headers
            )
        return self._vectors

    def check_model(self) -> None:
        """The index must have been built by the embedding model we query it with."""
        recorded = self.catalog.get_meta("embedding_model")
        if recorded is not None and recorded != self.embedder.name:
            raise IndexMismatchError(
                f"the index was built with embedding model {recorded!r} but {self.embedder.name!r} is configured; "
                "run `rag ingest --rebuild` (or set RAG_EMBEDDING_MODEL back)"
            )

    def open_for_search(self) -> None:
        """Check once per catalog generation that the index is there and consistent."""
        if self._checked_generation is not None and self._checked_generation == self.catalog.generation:
            return
        if not self.catalog_path.exists() or self.catalog.paper_count() == 0:
            raise IndexMissingError(f"no index in {self.dir}; run `rag ingest`")
        self.check_model()
        chunks, vectors = self.catalog.chunk_count(), self.vectors.count()
        if chunks != vectors:
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
            path = self.dir / "lexical"
            lexical = LexicalIndex.load(path)
            if lexical is None or lexical.generation != generation:
                rows = self.catalog.iter_chunks()
                lexical = LexicalIndex.build(
                    [cid for cid, _, _ in rows], [f"{title}. {text}" for _, title, text in rows], generation
                )
                lexical.save(path)
            self._lexical = lexical
        return self._lexical

    def close(self) -> None:
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self._lexical = None
        self._checked_generation = None

    def wipe(self) -> None:
        if self.settings.chroma_url:
            self.vectors.drop()  # the server's collection is not under self.dir
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- ingest ---------------------------------------------------------------------------
    def ingest(self, papers: Sequence[Paper], progress: Progress | None = None) -> IngestReport:
        """Add new papers, replace changed ones, record new sources of known ones."""
        started = time.perf_counter()
        report = IngestReport(unique_papers=len(papers))
        catalog = self.catalog
        self.check_model()
        by_title = catalog.paper_ids_by_title()
        known_ids = set(by_title.values())

        todo: list[tuple[Paper, str | None]] = []  # (paper, the id of the version it replaces)
        source_updates: dict[str, list[str]] = {}
        for paper in papers:
            if paper.paper_id in known_ids:
                report.unchanged += 1
                old_sources = catalog.sources_of(paper.paper_id)
                merged = old_sources + [s for s in paper.sources if s not in old_sources]
                if merged != old_sources:
                    source_updates[paper.paper_id] = merged
                continue
            old_id = by_title.get(paper.title_key)
            if old_id is not None:
                # Keep the sources the old version was seen in.
                old_sources = catalog.sources_of(old_id)
                paper = paper.model_copy(update={"sources": old_sources + [s for s in paper.sources if s not in old_sources]})
            todo.append((paper, old_id))
        if source_updates:
            catalog.set_sources(source_updates)
            report.sources_updated = len(source_updates)

        if todo:
            self._embed_and_commit(todo, report, progress)
            self.lexical  # bring BM25 up to date with what was committed
        report.added = sum(1 for _, old in todo if old is None)
        report.replaced = len(todo) - report.added
        report.seconds = time.perf_counter() - started
        return report

    def _embed_and_commit(self, todo: list[tuple[Paper, str | None]], report: IngestReport, progress: Progress | None) -> None:
        embedder, catalog = self.embedder, self.catalog
        if catalog.get_meta("embedding_model") is None:
            catalog.set_meta({
                "format": FORMAT_VERSION,
                "embedding_model": embedder.name,
                "dimension": embedder.dimension,
                "chunk_tokens": self.settings.chunk_tokens,
            })
        elif int(catalog.get_meta("dimension") or 0) != embedder.dimension:
            raise IndexMismatchError(
                f"the index holds {catalog.get_meta('dimension')}-d vectors but the embedder makes "
                f"{embedder.dimension}-d ones; run `rag ingest --rebuild`"
            )
        chunks_of = {
            paper.paper_id: chunk_paper(paper, embedder.count_tokens, self.settings.chunk_tokens, self.settings.chunk_overlap)
            for paper, _ in todo
        }
        total = sum(len(c) for c in chunks_of.values())
        if progress:
            progress("embed", 0, total)
        vectors = self.vectors
        for start in range(0, len(todo), PAPERS_PER_BATCH):
            batch = todo[start : start + PAPERS_PER_BATCH]
            chunks: list[Chunk] = [c for paper, _ in batch for c in chunks_of[paper.paper_id]]
            t0 = time.perf_counter()
            embedded = embedder.encode(
                [c.embedded_text for c in chunks], progress=(lambda n: progress("embed", n, total)) if progress else None
            )
            report.embed_seconds += time.perf_counter() - t0
            replaced = [old for _, old in batch if old is not None]
            old_chunk_ids = catalog.chunk_ids_of(replaced)
            vectors.add(
                [c.chunk_id for c in chunks], embedded, [c.text for c in chunks],
                [{"paper_id": c.paper_id, "position": c.position, "title": c.title} for c in chunks],
            )
            vectors.delete(old_chunk_ids)
            catalog.commit_batch([paper for paper, _ in batch], chunks, replaced)
            report.chunks_added += len(chunks)
            report.chunks_removed += len(old_chunk_ids)

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
            vector_store=f"{self.settings.chroma_url} ({self.settings.chroma_collection})" if self.settings.chroma_url
            else "embedded",
            embedding_model=catalog.get_meta("embedding_model"),
            dimension=int(dimension) if dimension else None,
            sources=catalog.source_names(),
            disk_bytes=disk,
        )


__all__ = ["Index", "IndexStats", "IngestReport", "RagError"]
