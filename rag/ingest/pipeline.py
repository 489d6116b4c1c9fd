"""Ingest: papers -> chunks -> vectors, committed to the index in the data dir.

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
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rag.corpus.chunking import chunk_paper
from rag.corpus.records import ReadResult
from rag.errors import IndexCorruptError, IndexMismatchError, RagError
from rag.ingest.batches import (
    BatchWriter,
    InFlight,
    IngestReport,
    Progress,
    advance,
    estimate_total,
    pieces_of,
    resolve,
)
from rag.store.datadir import BYTES_PER_CHUNK, storage_problem
from rag.store.index import COMPLETE, FORMAT_VERSION, Index, retired_dir, staging_dir
from rag.store.precomputed import Precomputed
from rag.store.vectors import VectorStore, file_manifest
from rag.types import Chunk, Paper

PAPERS_PER_BATCH = 64


class Ingester:
    """Writes papers into `index` (its catalog, vectors and lexical index, in step)."""

    def __init__(self, index: Index):
        self.index = index

    @property
    def papers_per_batch(self) -> int:
        """Papers embedded and committed together: more when the embedder keeps several requests in
        flight (each batch's last requests run alone; a larger batch makes that tail a smaller share)."""
        return PAPERS_PER_BATCH * max(1, int(getattr(self.index.embedder, "concurrency", 1)))

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

        `papers` is a list of papers, or pieces of a corpus as `rag.corpus.readers.stream_corpus` reads them
        (their `papers` and `where`, in step): a stream is embedded and committed batch by batch as it
        is read, holding no more than a few batches in memory. Within it, a paper read twice is
        ingested once (a title read again with another abstract replaces the earlier one, a problem
        line of the report). `limit` stops after that many distinct papers.

        With `rebuild`, the papers are embedded into a new index beside the current one, which is
        replaced only once the new one is complete (any failure, kill -9 included, leaves it as it was).
        Holds the data dir's writer lock throughout (waiting for another ingest if needed).
        """
        self.index.embedder.dimension  # noqa: B018 - load the configured embedding model first: a bad name fails before any write
        pieces = pieces_of(papers, self.papers_per_batch)
        try:
            with self.index.lock.hold(on_wait):
                self.index.writing = True
                try:
                    self._clear_leftovers()
                    if rebuild:
                        return self._rebuild(pieces, progress, limit)
                    return self._ingest(pieces, progress, limit)
                finally:
                    self.index.writing = False
        except (RagError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if problem := storage_problem(exc, self.index.dir, BYTES_PER_CHUNK * self.papers_per_batch * 3):
                raise problem from exc
            raise

    def _rebuild(self, pieces: Iterable[ReadResult], progress: Progress | None, limit: int | None) -> IngestReport:
        target = staging_dir(self.index.dir)
        collection = (
            f"{self.index.settings.store.chroma_collection[:50]}-{uuid.uuid4().hex[:8]}"
            if self.index.settings.store.chroma_url
            else None
        )
        new = Index(
            self.index.settings,
            self.index.embedder,
            directory=target,
            collection=collection,
            paper_embedder=self.index.paper_embedder,
        )
        new.writing = True
        try:
            report = Ingester(new)._ingest(pieces, progress, limit)
        finally:
            new.close()
        (target / COMPLETE).write_text("complete\n")
        self._swap_in(target)
        return report

    def _swap_in(self, target: Path) -> None:
        """Replace the current index by the complete one in `target` (two renames; `finish_swap` mends a cut)."""
        old_collection = (
            self.index.collection_name
            if self.index.settings.store.chroma_url and self.index.catalog_path.exists()
            else None
        )
        self.index.close()
        retired = retired_dir(self.index.dir)
        shutil.rmtree(retired, ignore_errors=True)
        if self.index.dir.exists():
            os.replace(self.index.dir, retired)
        os.replace(target, self.index.dir)
        (self.index.dir / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(retired, ignore_errors=True)
        if old_collection and old_collection != self.index.collection_name:
            self._drop_server_collection(old_collection)

    def _drop_server_collection(self, name: str) -> None:
        try:
            VectorStore(
                self.index.vectors_path,
                collection=name,
                url=self.index.settings.store.chroma_url,
                headers=self.index.settings.store.chroma_headers,
            ).drop()
        except RagError:
            pass  # the server is gone: the old collection stays there, unused

    def _clear_leftovers(self) -> None:
        """Under the writer lock: swap in a rebuild that completed but was cut before its swap; remove an unfinished one."""
        target, retired = staging_dir(self.index.dir), retired_dir(self.index.dir)
        if (target / COMPLETE).exists():
            self._swap_in(target)
        elif target.exists():
            if self.index.settings.store.chroma_url:
                left = Index(
                    self.index.settings, self.index.embedder, directory=target, paper_embedder=self.index.paper_embedder
                )
                if left.catalog_path.exists() and left.catalog.get_meta("chroma_collection"):
                    self._drop_server_collection(left.collection_name)
                left.close()
            shutil.rmtree(target, ignore_errors=True)
        if self.index.dir.exists():
            shutil.rmtree(retired, ignore_errors=True)

    def _ingest(self, pieces: Iterable[ReadResult], progress: Progress | None, limit: int | None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        catalog = self.index.catalog
        self.index.check_model()
        catalog.check_integrity()
        catalog.index_names()
        catalog.migrate()  # catalogs from before the filter tables get them here
        if layout := self.index.outdated_layout():
            report.problems.append(layout)  # catalogs from before the names table get it here
        stored = self._drop_damaged_vectors(report)
        if self.index.papers is not None:
            self.index.papers.begin(catalog)
        catalog.set_meta({"vector_state": "writing"})
        catalog.begin_run()
        repairs = self._repairs(report, stored)
        report.repaired = len(repairs)
        if self._embed_and_commit(pieces, repairs, report, progress, limit):
            self.index.lexical  # noqa: B018 - the property brings BM25 up to date with what was committed
        if self.index.papers is not None:  # papers from before the paper model (or another one's) get its vectors
            report.paper_vectors_added = self.index.papers.repair(catalog, progress)
        self._keep_vectors()
        manifest = {}
        if not self.index.settings.store.chroma_url:
            self.index.vectors.snapshot()  # so that no later read rewrites the files recorded here
            manifest = file_manifest(self.index.vectors_path)
        catalog.set_meta({"vector_files": json.dumps(manifest), "vector_state": "clean"})
        report.seconds = time.perf_counter() - started
        return report

    def _record_model(self) -> None:
        """Before the first vectors: the embedding model and layout the index is built with."""
        embedder, catalog = self.index.embedder, self.index.catalog
        if catalog.get_meta("embedding_model") is None:
            catalog.set_meta(
                {
                    "format": FORMAT_VERSION,
                    "embedding_model": embedder.name,
                    "dimension": embedder.dimension,
                    "chunk_tokens": self.index.settings.store.chunk_tokens,
                    **(
                        {"chroma_collection": self.index.collection_name}
                        if self.index.settings.store.chroma_url
                        else {}
                    ),
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
        embedder = self.index.embedder
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
                    resolved = resolve(batch, self.index.catalog, in_flight, writer.committed, report, limit)
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
                            paper,
                            embedder.count_tokens,
                            self.index.settings.store.chunk_tokens,
                            self.index.settings.store.chunk_overlap,
                        )
                    ]
                    todo_papers += len(todo)
                    # the progress counts texts embedded: the chunks, and each paper once more with a paper model
                    chunks_seen += len(chunks) + (len(todo) if self.index.papers else 0)
                    total = estimate_total(chunks_seen, todo_papers, papers_in, report.unique_papers, done, limit)
                    if progress:
                        progress("embed", 0, total)
                    t0 = time.perf_counter()
                    vectors = shipped.encode([c.embedded_text for c in chunks], embedder, advance(progress, total))
                    paper_vectors = (
                        self.index.papers.embed([paper for paper, _ in todo], advance(progress, total))
                        if self.index.papers
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

    def _note_seen(self, seen: list[tuple[str, list[str], str]], report: IngestReport) -> None:
        """In the writer thread, after the batches before it: record that this run read these indexed
        papers (a later copy is then no new paper), adding the sources they were read in."""
        catalog = self.index.catalog
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
        catalog, vectors = self.index.catalog, self.index.vectors
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
        catalog = self.index.catalog
        if catalog.vectors_kept:
            return
        after = ""
        while ids := catalog.chunks_without_vectors(1000, after):
            catalog.set_vectors(self.index.vectors.get_vectors(ids))
            after = ids[-1]
        if not catalog.chunks_without_vectors(1):
            catalog.set_meta({"vectors_kept": "1"})

    def _drop_damaged_vectors(self, report: IngestReport) -> int | None:
        """A damaged vector store is removed; `_repairs` then embeds every paper of the catalog again.
        Returns the vectors it holds when it was read (None: not read, or removed)."""
        if self.index.settings.store.chroma_url:
            return None  # never drop a server's collection: its errors are VectorStoreError, not damage
        try:
            return self.index.vectors.count()  # ~3 s at 1M chunks: `_repairs` reuses it
        except IndexCorruptError as exc:
            damage = str(exc)
        report.problems.append(f"the vector store was damaged ({damage}); re-embedding the catalog's papers")
        self.index.close_vectors()
        shutil.rmtree(self.index.vectors_path, ignore_errors=True)
        return None

    def _repairs(self, report: IngestReport, stored_count: int | None = None) -> list[Paper]:
        """Remove vectors the catalog does not know (a crash between the two writes); return the
        catalog's papers whose vectors are missing, to embed again."""
        catalog, vectors = self.index.catalog, self.index.vectors
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


__all__ = ["PAPERS_PER_BATCH", "IngestReport", "Ingester", "Progress"]
