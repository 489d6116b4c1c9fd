"""The index in the data dir: catalog (SQLite) + vectors (Chroma) + lexical (bm25s), kept in step.

Ingest is incremental and crash-safe: papers are embedded and committed in batches, the vectors
first, then the catalog (the manifest of what is ingested), then the removal of replaced vectors.
A crash leaves at worst vectors the catalog does not know (never shown, removed by the next
ingest); a batch is either in the catalog with its vectors or is redone. One process writes at a
time (a file lock in the data dir); readers see the last committed batch.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .catalog import Catalog
from .chunking import chunk_paper
from .corpus import ReadResult
from .datadir import BYTES_PER_CHUNK, storage_problem
from .datafiles import IndexFiles
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, ModelError, RagError
from .filters import PaperTable
from .lexical import LexicalIndex
from .locking import WriterLock
from .paper_vectors import PaperEmbedding
from .precomputed import Precomputed
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
    left_out: int = 0  # papers read that were not in the categories asked for (`--category`)
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    paper_vectors_added: int = 0  # papers of the index given a whole-abstract vector after the fact


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
    paper_model: str | None = None  # the model of the papers' whole-abstract vectors (`rag.paper_vectors`)
    paper_vectors: int = 0


def _advance(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    """The embedder's progress(n) as the index's progress("embed", n, total)."""
    if progress is None:
        return None
    report = progress
    return lambda n: report("embed", n, total)


def _pieces(papers: Sequence[Paper] | Iterable[ReadResult], size: int) -> Iterator[ReadResult]:
    """The input as pieces of a corpus: a list of papers is cut into pieces of `size`."""
    if not isinstance(papers, Sequence):
        yield from papers
        return
    total = len(papers)
    for start in range(0, total, size):
        part = list(papers[start : start + size])
        yield ReadResult(papers=part, where=[p.source or "input" for p in part], done=(start + len(part)) / total)


def _estimate_total(chunks: int, todo: int, papers_in: int, unique: int, done: float, limit: int | None) -> int:
    """The chunks this ingest will embed, extrapolated: papers still to read (from the share of the
    input read, or from `limit`) times the chunks per paper read so far."""
    if papers_in == 0 or todo == 0:
        return chunks
    left = (1.0 - done) / done * papers_in if done > 0 else 0.0
    if limit:
        left = min(left, max(0, limit - unique)) if done > 0 else max(0, limit - unique)
    return chunks + round(left * chunks / papers_in)


class BatchWriter:
    """Writes embedded batches in a thread of its own, in order, while the caller embeds the next one.

    `write(batch, chunks, vectors, places, report)` runs for each `put`, one at a time, in the order
    given: each batch keeps the commit order of the index (vectors -> catalog -> stale vectors), so a
    kill at any moment still leaves at worst orphan vectors. `call(fn)` runs `fn(report)` in the same
    order (updates that must follow the batches handed over before). At most one item waits while
    another is written; `committed` is the number of batches written so far. On leaving the block,
    the items handed over are written (also when the caller stops with an error or Ctrl-C: what was
    embedded is kept); a write's error is raised in the caller's thread.
    """

    def __init__(self, write: Callable[..., None], report: IngestReport):
        self.write = write
        self.report = report
        self.queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.put_count = 0
        self.committed = 0
        self.thread = threading.Thread(target=self._run, name="rag-index-writer", daemon=True)

    def __enter__(self) -> BatchWriter:
        self.thread.start()
        return self

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    item()
                except BaseException as exc:  # handed to the caller's thread
                    self.error = exc

    def put(
        self,
        batch: list[tuple[Paper, str | None]],
        chunks: list[Chunk],
        vectors: np.ndarray,
        places: list[str] | None = None,
        paper_vectors: np.ndarray | None = None,
    ) -> int:
        """Hand over one batch; its number (`committed` reaches it once it is written)."""
        self._raise()
        self.put_count += 1
        number = self.put_count

        def write() -> None:
            self.write(batch, chunks, vectors, places, self.report, paper_vectors)
            self.committed = number

        self.queue.put(write)
        return number

    def call(self, fn: Callable[[IngestReport], None]) -> int:
        """Run `fn(report)` after what was handed over before; its number (as `put`'s)."""
        self._raise()
        self.put_count += 1
        number = self.put_count

        def run() -> None:
            fn(self.report)
            self.committed = number

        self.queue.put(run)
        return number

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc_info: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if exc_info[0] is None:
            self._raise()


@dataclass
class Resolved:
    """What to do with one batch read: papers to embed (with the id each replaces) and their places;
    indexed papers read again (title -> id, sources, place); whether the limit was reached."""

    todo: list[tuple[Paper, str | None]] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    seen: dict[str, tuple[str, list[str], str]] = field(default_factory=dict)
    stop: bool = False


class InFlight:
    """Papers of this run handed to the writer but maybe not committed yet, by title (the catalog
    answers for the rest): a duplicate later in the input must find them, and no more than the
    batches in flight is held in memory."""

    def __init__(self) -> None:
        self.by_title: dict[str, tuple[int, str, list[str], str]] = {}  # title -> (batch, id, sources, place)

    def get(self, title_key: str) -> tuple[str, list[str], str] | None:
        entry = self.by_title.get(title_key)
        return entry[1:] if entry else None

    def forget_committed(self, committed: int) -> None:
        """Drop what batches up to `committed` hold (call it before asking the catalog: it has them)."""
        self.by_title = {key: entry for key, entry in self.by_title.items() if entry[0] > committed}


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
        `paper_embedder`, each paper also gets a whole-abstract vector (`rag.paper_vectors`)."""
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
        self.lock = WriterLock(settings.home, settings.lock_timeout)
        self._writing = False

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
        return recorded or self._collection or self.settings.chroma_collection

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
        return (
            f"the index's chunks were cut at {recorded} word pieces, the settings ask for {self.settings.chunk_tokens} "
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
    @property
    def papers_per_batch(self) -> int:
        """Papers embedded and committed together: more when the embedder keeps several requests in
        flight (each batch's last requests run alone; a larger batch makes that tail a smaller share)."""
        return PAPERS_PER_BATCH * max(1, int(getattr(self.embedder, "concurrency", 1)))

    def ingest(
        self,
        papers: Sequence[Paper] | Iterable[ReadResult],
        progress: Progress | None = None,
        *,
        rebuild: bool = False,
        on_wait: Callable[[str], object] | None = None,
        limit: int | None = None,
    ) -> IngestReport:
        """Add new papers, replace changed ones, record new sources of known ones, repair what a crash left.

        `papers` is a list of papers, or pieces of a corpus as `rag.corpus.stream_corpus` reads them
        (their `papers` and `where`, in step): a stream is embedded and committed batch by batch as it
        is read, holding no more than a few batches in memory. Within it, a paper read twice is
        ingested once (a title read again with another abstract replaces the earlier one, a problem
        line of the report). `limit` stops after that many distinct papers.

        With `rebuild`, the papers are embedded into a new index beside the current one, which is
        replaced only once the new one is complete (any failure, kill -9 included, leaves it as it was).
        Holds the data dir's writer lock throughout (waiting for another ingest if needed).
        """
        self.embedder.dimension  # noqa: B018 - load the configured embedding model first: a bad name fails before any write
        pieces = _pieces(papers, self.papers_per_batch)
        try:
            with self.lock.hold(on_wait):
                self._writing = True
                try:
                    self._clear_leftovers()
                    if rebuild:
                        return self._rebuild(pieces, progress, limit)
                    return self._ingest(pieces, progress, limit)
                finally:
                    self._writing = False
        except (RagError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if problem := storage_problem(exc, self.dir, BYTES_PER_CHUNK * self.papers_per_batch * 3):
                raise problem from exc
            raise

    def _rebuild(self, pieces: Iterable[ReadResult], progress: Progress | None, limit: int | None) -> IngestReport:
        target = staging_dir(self.dir)
        collection = (
            f"{self.settings.chroma_collection[:50]}-{uuid.uuid4().hex[:8]}" if self.settings.chroma_url else None
        )
        new = Index(
            self.settings, self.embedder, directory=target, collection=collection, paper_embedder=self.paper_embedder
        )
        new._writing = True
        try:
            report = new._ingest(pieces, progress, limit)
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
            VectorStore(
                self.vectors_path, collection=name, url=self.settings.chroma_url, headers=self.settings.chroma_headers
            ).drop()
        except RagError:
            pass  # the server is gone: the old collection stays there, unused

    def _clear_leftovers(self) -> None:
        """Under the writer lock: swap in a rebuild that completed but was cut before its swap; remove an unfinished one."""
        target, retired = staging_dir(self.dir), retired_dir(self.dir)
        if (target / COMPLETE).exists():
            self._swap_in(target)
        elif target.exists():
            if self.settings.chroma_url:
                left = Index(self.settings, self.embedder, directory=target, paper_embedder=self.paper_embedder)
                if left.catalog_path.exists() and left.catalog.get_meta("chroma_collection"):
                    self._drop_server_collection(left.collection_name)
                left.close()
            shutil.rmtree(target, ignore_errors=True)
        if self.dir.exists():
            shutil.rmtree(retired, ignore_errors=True)

    def _ingest(self, pieces: Iterable[ReadResult], progress: Progress | None, limit: int | None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        catalog = self.catalog
        self.check_model()
        catalog.check_integrity()
        catalog.index_names()
        catalog.migrate()  # catalogs from before the filter tables get them here
        if layout := self.outdated_layout():
            report.problems.append(layout)  # catalogs from before the names table get it here
        stored = self._drop_damaged_vectors(report)
        if self.papers is not None:
            self.papers.begin(catalog)
        catalog.set_meta({"vector_state": "writing"})
        catalog.begin_run()
        repairs = self._repairs(report, stored)
        report.repaired = len(repairs)
        if self._embed_and_commit(pieces, repairs, report, progress, limit):
            self.lexical  # noqa: B018 - the property brings BM25 up to date with what was committed
        if self.papers is not None:  # papers from before the paper model (or another one's) get its vectors
            report.paper_vectors_added = self.papers.repair(catalog, progress)
        self._keep_vectors()
        manifest = {}
        if not self.settings.chroma_url:
            self.vectors.snapshot()  # so that no later read rewrites the files recorded here
            manifest = file_manifest(self.vectors_path)
        catalog.set_meta({"vector_files": json.dumps(manifest), "vector_state": "clean"})
        report.seconds = time.perf_counter() - started
        return report

    def _record_model(self) -> None:
        """Before the first vectors: the embedding model and layout the index is built with."""
        embedder, catalog = self.embedder, self.catalog
        if catalog.get_meta("embedding_model") is None:
            catalog.set_meta(
                {
                    "format": FORMAT_VERSION,
                    "embedding_model": embedder.name,
                    "dimension": embedder.dimension,
                    "chunk_tokens": self.settings.chunk_tokens,
                    **({"chroma_collection": self.collection_name} if self.settings.chroma_url else {}),
                }
            )
        elif int(catalog.get_meta("dimension") or 0) != embedder.dimension:
            raise IndexMismatchError(
                f"the index holds {catalog.get_meta('dimension')}-d vectors but the embedder makes "
                f"{embedder.dimension}-d ones; run `rag ingest --rebuild`"
            )

    def _embed_and_commit(
        self,
        pieces: Iterable[ReadResult],
        repairs: list[Paper],
        report: IngestReport,
        progress: Progress | None,
        limit: int | None,
    ) -> bool:
        """Resolve, chunk and embed the input batch by batch, handing each to the writer thread; whether
        anything was embedded."""
        embedder = self.embedder
        shipped = Precomputed.shipped(embedder.name)  # the bundled corpus's vectors, if this is their model
        in_flight = InFlight()
        embedded_any = False
        # The progress total (chunks) is extrapolated from what was read so far: the share of the
        # input's bytes read (or of `limit`), and the chunks per paper to embed seen so far.
        papers_in = todo_papers = chunks_seen = 0
        with BatchWriter(self._write_batch, report) as writer:
            size = self.papers_per_batch
            repair_batches: Iterator[tuple[list[tuple[Paper, None, str]], list[Paper], float]] = (
                ([], repairs[i : i + size], 0.0) for i in range(0, len(repairs), size)
            )
            input_batches: Iterator[tuple[list[tuple[Paper, None, str]], list[Paper], float]] = (
                (batch, [], done) for batch, done in self._batches(pieces)
            )
            for batch, repair, done in itertools.chain(repair_batches, input_batches):
                if repair:  # papers of the catalog whose vectors are missing: embedded again, not input
                    todo: list[tuple[Paper, str | None]] = [(paper, paper.paper_id) for paper in repair]
                    places = [""] * len(todo)
                    seen: dict[str, tuple[str, list[str], str]] = {}
                else:
                    papers_in += len(batch)
                    resolved = self._resolve(batch, in_flight, writer, report, limit)
                    todo, places, seen = resolved.todo, resolved.places, resolved.seen
                    if resolved.stop:
                        limit = 0  # the batch was cut at the limit: read no further
                if todo:
                    if not embedded_any:
                        self._record_model()
                        embedded_any = True
                    chunks: list[Chunk] = [
                        c
                        for paper, _ in todo
                        for c in chunk_paper(
                            paper, embedder.count_tokens, self.settings.chunk_tokens, self.settings.chunk_overlap
                        )
                    ]
                    todo_papers += len(todo)
                    # the progress counts texts embedded: the chunks, and each paper once more with a paper model
                    chunks_seen += len(chunks) + (len(todo) if self.papers else 0)
                    total = _estimate_total(chunks_seen, todo_papers, papers_in, report.unique_papers, done, limit)
                    if progress:
                        progress("embed", 0, total)
                    t0 = time.perf_counter()
                    vectors = shipped.encode([c.embedded_text for c in chunks], embedder, _advance(progress, total))
                    paper_vectors = (
                        self.papers.embed([paper for paper, _ in todo], _advance(progress, total))
                        if self.papers
                        else None
                    )
                    report.embed_seconds += time.perf_counter() - t0
                    number = writer.put(todo, chunks, vectors, places, paper_vectors)
                    for (paper, _), place in zip(todo, places):
                        if place:  # a repair is not part of the input
                            in_flight.by_title[paper.title_key] = (number, paper.paper_id, paper.sources, place)
                if seen:
                    number = writer.call(functools.partial(self._note_seen, list(seen.values())))
                    for key, entry in seen.items():
                        in_flight.by_title[key] = (number, *entry)
                if limit == 0:
                    break
        return embedded_any

    def _batches(self, pieces: Iterable[ReadResult]) -> Iterator[tuple[list[tuple[Paper, None, str]], float]]:
        """The input's papers (with their `file:line`) in batches of `papers_per_batch`, and the share
        of the input read when the batch was complete."""
        size = self.papers_per_batch
        batch: list[tuple[Paper, None, str]] = []
        done = 0.0
        for piece in pieces:
            done = piece.done
            for paper, place in zip(piece.papers, piece.where):
                batch.append((paper, None, place))
                if len(batch) == size:
                    yield batch, done
                    batch = []
        if batch:
            yield batch, done

    def _resolve(
        self,
        batch: list[tuple[Paper, None, str]],
        in_flight: InFlight,
        writer: BatchWriter,
        report: IngestReport,
        limit: int | None,
    ) -> Resolved:
        """Decide, for each paper of a batch read, whether it is new, replaces a paper of the same title,
        is already indexed (maybe with a new source) or was read before in this run (then it is not
        one more distinct paper; a later abstract under the same title replaces the earlier one)."""
        in_flight.forget_committed(writer.committed)
        known = self.catalog.known_titles([paper.title_key for paper, _, _ in batch])
        state: dict[str, tuple[str, list[str], str | None]] = {}  # title -> (id, sources, place in this run)
        todo: dict[str, tuple[Paper, str | None, str]] = {}  # title -> (paper to embed, the id it replaces, place)
        seen: dict[str, tuple[str, list[str], str]] = {}  # title -> (id, sources, place) of papers not re-embedded
        resolved = Resolved()
        for paper, _, place in batch:
            key = paper.title_key
            current = state.get(key) or in_flight.get(key) or known.get(key)
            if current is None:
                todo[key] = (paper, None, place)
                state[key] = (paper.paper_id, paper.sources, place)
                report.added += 1
            else:
                pid, sources, run_place = current
                merged = sources + [s for s in paper.sources if s not in sources]
                if pid == paper.paper_id:
                    first_place = run_place or place
                    if key in todo:
                        todo[key][0].sources = merged
                    elif run_place is None or merged != sources:
                        seen[key] = (pid, merged, first_place)
                    state[key] = (pid, merged, first_place)
                    if run_place is not None:
                        continue  # a copy of a paper this run already took
                    report.unchanged += 1
                else:
                    replacement = paper.model_copy(update={"sources": merged})
                    state[key] = (replacement.paper_id, merged, place)
                    seen.pop(key, None)
                    if run_place is not None:
                        report.problems.append(
                            f"{run_place}: replaced by {place} (the same title with another abstract)"
                        )
                        # An earlier version in this batch was never written: it replaces what that one replaced.
                        todo[key] = (replacement, todo[key][1] if key in todo else pid, place)
                        continue
                    todo[key] = (replacement, pid, place)
                    report.replaced += 1
            report.unique_papers += 1
            if limit is not None and report.unique_papers >= limit:
                resolved.stop = True
                break
        resolved.todo = [(paper, old) for paper, old, _ in todo.values()]
        resolved.places = [place for _, _, place in todo.values()]
        resolved.seen = seen
        return resolved

    def _note_seen(self, seen: list[tuple[str, list[str], str]], report: IngestReport) -> None:
        """In the writer thread, after the batches before it: record that this run read these indexed
        papers (a later copy is then no new paper), adding the sources they were read in."""
        catalog = self.catalog
        changed = {}
        for pid, sources, _ in seen:
            old = catalog.sources_of(pid)
            merged = old + [s for s in sources if s not in old]
            if merged != old:
                changed[pid] = merged
        if changed:
            catalog.set_sources(changed)
            report.sources_updated += len(changed)
        catalog.mark_run([(pid, place) for pid, _, place in seen])

    def _write_batch(
        self,
        batch: list[tuple[Paper, str | None]],
        chunks: list[Chunk],
        embedded: np.ndarray,
        places: list[str] | None,
        report: IngestReport,
        paper_vectors: np.ndarray | None = None,
    ) -> None:
        """Commit one embedded batch: vectors, then the catalog (with the vectors), then the removal of
        the vectors it replaced (until the catalog moved on, readers still use them)."""
        catalog, vectors = self.catalog, self.vectors
        replaced = [old for _, old in batch if old is not None]
        new_ids = {c.chunk_id for c in chunks}
        stale = [cid for cid in catalog.chunk_ids_of(replaced) if cid not in new_ids]
        vectors.add([c.chunk_id for c in chunks], embedded)
        catalog.commit_batch(
            [paper for paper, _ in batch], chunks, replaced, embedded, places=places, paper_vectors=paper_vectors
        )
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

    def _drop_damaged_vectors(self, report: IngestReport) -> int | None:
        """A damaged vector store is removed; `_repairs` then embeds every paper of the catalog again.
        Returns the vectors it holds when it was read (None: not read, or removed)."""
        if self.settings.chroma_url:
            return None  # never drop a server's collection: its errors are VectorStoreError, not damage
        try:
            return self.vectors.count()  # ~3 s at 1M chunks: `_repairs` reuses it
        except IndexCorruptError as exc:
            damage = str(exc)
        report.problems.append(f"the vector store was damaged ({damage}); re-embedding the catalog's papers")
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None
        shutil.rmtree(self.vectors_path, ignore_errors=True)
        return None

    def _repairs(self, report: IngestReport, stored_count: int | None = None) -> list[Paper]:
        """Remove vectors the catalog does not know (a crash between the two writes); return the
        catalog's papers whose vectors are missing, to embed again."""
        catalog, vectors = self.catalog, self.vectors
        if catalog.chunk_count() == (vectors.count() if stored_count is None else stored_count):
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
            vector_store=f"{self.settings.chroma_url} ({self.settings.chroma_collection})"
            if self.settings.chroma_url
            else "embedded",
            embedding_model=catalog.get_meta("embedding_model"),
            dimension=int(dimension) if dimension else None,
            sources=catalog.source_names(),
            disk_bytes=disk,
            paper_model=catalog.get_meta("paper_model"),
            paper_vectors=catalog.paper_vector_count(),
        )


__all__ = ["Index", "IndexStats", "IngestReport", "RagError"]
