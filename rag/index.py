"""The index in the data dir: catalog (SQLite) + vectors (Chroma) + lexical (bm25s), kept in step.

Ingest is incremental and crash-safe: papers are embedded and committed in batches, the vectors
first, then the catalog (the manifest of what is ingested), then the removal of replaced vectors.
A crash leaves at worst vectors the catalog does not know (never shown, removed by the next
ingest); a batch is either in the catalog with its vectors or is redone. One process writes at a
time (a file lock in the data dir); readers see the last committed batch.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .catalog import Catalog
from .chunking import chunk_paper
from .datadir import BYTES_PER_CHUNK, storage_problem
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, ModelError, RagError
from .filters import PaperTable
from .lexical import LexicalIndex
from .locking import WriterLock
from .protocols import Embedder
from .settings import Settings
from .types import Chunk, Paper
from .vectors import VectorStore, check_files, file_manifest

# progress(stage, advance, total): stage is "embed"; total (chunks) is an estimate that the calls refine.
Progress = Callable[[str, int, int], None]
FORMAT_VERSION = "1"
PAPERS_PER_BATCH = 64
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
    repaired: int = 0
    orphans_removed: int = 0
    sanitized: int = 0  # papers read with control characters or escape sequences (stored without them)
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


def _advance(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    """The embedder's progress(n) as the index's progress("embed", n, total)."""
    if progress is None:
        return None
    report = progress
    return lambda n: report("embed", n, total)


class BatchWriter:
    """Writes embedded batches in a thread of its own, in order, while the caller embeds the next one.

    `write(batch, chunks, vectors, report)` runs for each `put`, one at a time, in the order given: each
    batch keeps the commit order of the index (vectors -> catalog -> stale vectors), so a kill at any
    moment still leaves at worst orphan vectors. At most one batch waits while another is written. On
    leaving the block, the batches handed over are written (also when the caller stops with an error
    or Ctrl-C: what was embedded is kept); a write's error is raised in the caller's thread.
    """

    def __init__(self, write: Callable[..., None], report: IngestReport):
        self.write = write
        self.report = report
        self.queue: queue.Queue[tuple | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rag-index-writer", daemon=True)

    def __enter__(self) -> BatchWriter:
        self.thread.start()
        return self

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write(*item, self.report)
                except BaseException as exc:  # handed to the caller's thread
                    self.error = exc

    def put(self, batch: list[tuple[Paper, str | None]], chunks: list[Chunk], vectors: np.ndarray) -> None:
        self._raise()
        self.queue.put((batch, chunks, vectors))

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc_info: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if exc_info[0] is None:
            self._raise()


class Index:
    def __init__(self, settings: Settings, embedder: Embedder, *, directory: Path | None = None,
                 collection: str | None = None):
        """The index in `settings.index_dir` (or in `directory`, for a rebuild's new index)."""
        self.settings = settings
        self.embedder = embedder
        self.dir = directory or settings.index_dir
        self._collection = collection
        if directory is None:
            finish_swap(self.dir)
        self._catalog: Catalog | None = None
        self._vectors: VectorStore | None = None
        self._lexical: LexicalIndex | None = None
        self._papers: PaperTable | None = None
        self._checked_generation: int | None = None
        self.lock = WriterLock(settings.home, settings.lock_timeout)
        self._writing = False

    # --- opening --------------------------------------------------------------------------
    @property
    def catalog_path(self) -> Path:
        return self.dir / "catalog.sqlite"

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
        return recorded or self._collection or self.settings.chroma_collection

    @property
    def vectors_path(self) -> Path:
        return self.dir / "chroma"

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
                self.vectors_path, collection=self.collection_name, url=s.chroma_url, headers=s.chroma_headers
            )
        return self._vectors

    def vector_damage(self) -> str | None:
        """How the vector files differ from what the last complete ingest wrote (None: intact or unknown)."""
        if self.settings.chroma_url:
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
        if recorded is None or int(recorded) == self.settings.chunk_tokens:
            return None
        return (f"the index's chunks were cut at {recorded} word pieces, the settings ask for {self.settings.chunk_tokens} "
                "(RAG_CHUNK_TOKENS); `rag ingest --rebuild` re-embeds the indexed papers with the new size")

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
            path = self.dir / "lexical"
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
        if self._writing:
            lexical.save(path)
            return
        with self.lock.try_hold() as free:
            if free:
                lexical.save(path)

    def close(self) -> None:
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self._lexical = None
        self._papers = None
        self._checked_generation = None

    # --- ingest ---------------------------------------------------------------------------
    def ingest(
        self, papers: Sequence[Paper], progress: Progress | None = None, *, rebuild: bool = False,
        on_wait: Callable[[str], object] | None = None,
    ) -> IngestReport:
        """Add new papers, replace changed ones, record new sources of known ones, repair what a crash left.

        With `rebuild`, the papers are embedded into a new index beside the current one, which is
        replaced only once the new one is complete (any failure, kill -9 included, leaves it as it was).
        Holds the data dir's writer lock throughout (waiting for another ingest if needed).
        """
        self.embedder.dimension  # noqa: B018 - load the configured embedding model first: a bad name fails before any write
        try:
            with self.lock.hold(on_wait):
                self._writing = True
                try:
                    self._clear_leftovers()
                    if rebuild:
                        return self._rebuild(papers, progress)
                    return self._ingest(papers, progress)
                finally:
                    self._writing = False
        except (RagError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if problem := storage_problem(exc, self.dir, BYTES_PER_CHUNK * len(papers) * 3):
                raise problem from exc
            raise

    def _rebuild(self, papers: Sequence[Paper], progress: Progress | None) -> IngestReport:
        target = staging_dir(self.dir)
        collection = f"{self.settings.chroma_collection[:50]}-{uuid.uuid4().hex[:8]}" if self.settings.chroma_url else None
        new = Index(self.settings, self.embedder, directory=target, collection=collection)
        new._writing = True
        try:
            report = new._ingest(papers, progress)
        finally:
            new.close()
        (target / COMPLETE).write_text("complete\n")
        self._swap_in(target)
        return report

    def _swap_in(self, target: Path) -> None:
        """Replace the current index by the complete one in `target` (two renames; `finish_swap` mends a cut)."""
        old_collection = self.collection_name if self.settings.chroma_url and self.catalog_path.exists() else None
        self.close()
        retired = retired_dir(self.dir)
        shutil.rmtree(retired, ignore_errors=True)
        if self.dir.exists():
            os.replace(self.dir, retired)
        os.replace(target, self.dir)
        (self.dir / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(retired, ignore_errors=True)
        if old_collection and old_collection != self.collection_name:
            self._drop_server_collection(old_collection)

    def _drop_server_collection(self, name: str) -> None:
        try:
            VectorStore(self.vectors_path, collection=name, url=self.settings.chroma_url,
                        headers=self.settings.chroma_headers).drop()
        except RagError:
            pass  # the server is gone: the old collection stays there, unused

    def _clear_leftovers(self) -> None:
        """Under the writer lock: swap in a rebuild that completed but was cut before its swap; remove an unfinished one."""
        target, retired = staging_dir(self.dir), retired_dir(self.dir)
        if (target / COMPLETE).exists():
            self._swap_in(target)
        elif target.exists():
            if self.settings.chroma_url:
                left = Index(self.settings, self.embedder, directory=target)
                if left.catalog_path.exists() and left.catalog.get_meta("chroma_collection"):
                    self._drop_server_collection(left.collection_name)
                left.close()
            shutil.rmtree(target, ignore_errors=True)
        if self.dir.exists():
            shutil.rmtree(retired, ignore_errors=True)

    def _ingest(self, papers: Sequence[Paper], progress: Progress | None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(unique_papers=len(papers))
        catalog = self.catalog
        self.check_model()
        catalog.check_integrity()
        catalog.index_names()
        catalog.migrate()  # catalogs from before the filter tables get them here
        if layout := self.outdated_layout():
            report.problems.append(layout)  # catalogs from before the names table get it here
        self._drop_damaged_vectors(report)
        catalog.set_meta({"vector_state": "writing"})
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
        queued = {paper.paper_id for paper, _ in todo}
        todo += [(paper, paper.paper_id) for paper in self._repairs(report) if paper.paper_id not in queued]

        if todo:
            self._embed_and_commit(todo, report, progress)
            self.lexical  # noqa: B018 - the property brings BM25 up to date with what was committed
        self._keep_vectors()
        manifest = {}
        if not self.settings.chroma_url:
            self.vectors.snapshot()  # so that no later read rewrites the files recorded here
            manifest = file_manifest(self.vectors_path)
        catalog.set_meta({"vector_files": json.dumps(manifest), "vector_state": "clean"})
        report.added = sum(1 for _, old in todo if old is None)
        report.repaired = sum(1 for paper, old in todo if old == paper.paper_id)
        report.replaced = len(todo) - report.added - report.repaired
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
                **({"chroma_collection": self.collection_name} if self.settings.chroma_url else {}),
            })
        elif int(catalog.get_meta("dimension") or 0) != embedder.dimension:
            raise IndexMismatchError(
                f"the index holds {catalog.get_meta('dimension')}-d vectors but the embedder makes "
                f"{embedder.dimension}-d ones; run `rag ingest --rebuild`"
            )
        todo_batches = [todo[i : i + PAPERS_PER_BATCH] for i in range(0, len(todo), PAPERS_PER_BATCH)]
        # Chunks are cut batch by batch (the first vectors are written seconds after the start at any
        # size); the total for the progress bar is extrapolated from the batches cut so far.
        papers_seen = chunks_seen = 0
        with BatchWriter(self._write_batch, report) as writer:
            for batch in todo_batches:
                chunks: list[Chunk] = [
                    c for paper, _ in batch
                    for c in chunk_paper(paper, embedder.count_tokens, self.settings.chunk_tokens, self.settings.chunk_overlap)
                ]
                papers_seen += len(batch)
                chunks_seen += len(chunks)
                total = chunks_seen + round((len(todo) - papers_seen) * chunks_seen / papers_seen)
                if progress:
                    progress("embed", 0, total)
                t0 = time.perf_counter()
                embedded = embedder.encode([c.embedded_text for c in chunks], progress=_advance(progress, total))
                report.embed_seconds += time.perf_counter() - t0
                writer.put(batch, chunks, embedded)

    def _write_batch(self, batch: list[tuple[Paper, str | None]], chunks: list[Chunk], embedded: np.ndarray,
                     report: IngestReport) -> None:
        """Commit one embedded batch: vectors, then the catalog (with the vectors), then the removal of
        the vectors it replaced (until the catalog moved on, readers still use them)."""
        catalog, vectors = self.catalog, self.vectors
        replaced = [old for _, old in batch if old is not None]
        new_ids = {c.chunk_id for c in chunks}
        stale = [cid for cid in catalog.chunk_ids_of(replaced) if cid not in new_ids]
        vectors.add([c.chunk_id for c in chunks], embedded)
        catalog.commit_batch([paper for paper, _ in batch], chunks, replaced, embedded)
        vectors.delete(stale)
        report.chunks_added += len(chunks)
        report.chunks_removed += len(stale)

    def _keep_vectors(self) -> None:
        """A catalog from before it kept the chunks' vectors gets them from the vector store, once
        (committed 1,000 at a time: a cut run resumes). Chunks whose vectors are missing there were
        re-embedded by this ingest's repairs."""
        catalog = self.catalog
        if catalog.vectors_kept:
            return
        after = ""
        while ids := catalog.chunks_without_vectors(1000, after):
            catalog.set_vectors(self.vectors.get_vectors(ids))
            after = ids[-1]
        if not catalog.chunks_without_vectors(1):
            catalog.set_meta({"vectors_kept": "1"})

    def _drop_damaged_vectors(self, report: IngestReport) -> None:
        """A damaged vector store is removed; `_repairs` then embeds every paper of the catalog again."""
        if self.settings.chroma_url:
            return  # never drop a server's collection: its errors are VectorStoreError, not damage
        try:
            self.vectors.count()
            return
        except IndexCorruptError as exc:
            damage = str(exc)
        report.problems.append(f"the vector store was damaged ({damage}); re-embedding the catalog's papers")
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None
        shutil.rmtree(self.vectors_path, ignore_errors=True)

    def _repairs(self, report: IngestReport) -> list[Paper]:
        """Remove vectors the catalog does not know (a crash between the two writes); return the
        catalog's papers whose vectors are missing, to embed again."""
        catalog, vectors = self.catalog, self.vectors
        if catalog.chunk_count() == vectors.count():
            return []
        stored = set(vectors.all_ids())
        known = set(catalog.all_chunk_ids())
        orphans = sorted(stored - known)
        if orphans:
            vectors.delete(orphans)
            report.orphans_removed = len(orphans)
        missing = known - stored
        if not missing:
            return []
        return list(catalog.get_papers(catalog.paper_ids_of_chunks(sorted(missing))).values())

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
