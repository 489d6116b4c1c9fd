"""Ingest from files and folders: read the corpus as the index asks for it (only the categories
wanted), record where the papers came from, and report what was read beside what was written."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from rag.corpus.provenance import Provenance
from rag.corpus.readers import stream_corpus
from rag.corpus.records import CategoryFilter, ReadResult, ReadTotals
from rag.errors import CorpusError, IndexCorruptError, InputError
from rag.ingest.pipeline import Ingester, IngestReport, Progress
from rag.store.index import Index
from rag.types import Paper


def ingest_paths(
    index: Index,
    provenance: Provenance,
    paths: Iterable[Path | str] | None = None,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], object] | None = None,
    limit: int | None = None,
    categories: Sequence[str] = (),
) -> IngestReport:
    """`Assistant.ingest`: see there."""
    started = time.perf_counter()  # the report's seconds cover the whole run, reading included
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")
    wanted = CategoryFilter(categories)
    if paths is None and rebuild and index.catalog_path.exists() and (indexed := _indexed_papers(index)):
        report = Ingester(index).ingest(
            [p for p in indexed if wanted(p)], progress=progress, rebuild=True, on_wait=on_wait, limit=limit
        )
        report.papers_read = len(indexed)
        report.seconds = time.perf_counter() - started
        return report
    read = ReadTotals()
    pieces = _read(index, paths, wanted, read)
    first = next(pieces, None)  # nothing usable: an error before any write
    if first is None:
        if wanted and read.papers:
            raise CorpusError(
                f"none of the {read.papers} papers read is in {wanted} (give arXiv categories such as cs.CL, "
                "or a prefix such as cs)"
            )
        detail = f": {read.problems[0]}" if read.problems else ""
        raise CorpusError(f"nothing could be ingested ({len(read.problems)} problems){detail}")
    report = Ingester(index).ingest(
        itertools.chain([first], pieces), progress=progress, rebuild=rebuild, on_wait=on_wait, limit=limit
    )
    provenance.record(sorted(read.sources), replace=rebuild)
    report.files, report.papers_read, report.sanitized = read.files, read.papers, read.sanitized
    report.left_out = read.left_out
    report.problems = read.problems + report.problems
    report.seconds = time.perf_counter() - started
    return report


def _read(
    index: Index, paths: Iterable[Path | str] | None, wanted: CategoryFilter, totals: ReadTotals
) -> Iterator[ReadResult]:
    """The corpus as pieces holding the papers in `wanted` categories, read as the index asks for
    them; `totals` adds up what was read (counts, problems, source names: not the papers)."""
    for piece in stream_corpus(list(paths) if paths is not None else None, Ingester(index).papers_per_batch):
        totals.files += piece.files
        totals.sanitized += piece.sanitized
        totals.problems += piece.problems
        totals.papers += len(piece.papers)
        if wanted:
            kept = [(paper, place) for paper, place in zip(piece.papers, piece.where) if wanted(paper)]
            totals.left_out += len(piece.papers) - len(kept)
            piece.papers, piece.where = [p for p, _ in kept], [w for _, w in kept]
        if not piece.papers:
            continue
        for paper in piece.papers:
            totals.sources.update(paper.sources)
        yield piece


def _indexed_papers(index: Index) -> list[Paper]:
    """The papers in the index, to embed anew on `rebuild` without paths (whatever corpus they came from)."""
    try:
        return index.catalog.all_papers()
    except (IndexCorruptError, sqlite3.DatabaseError) as exc:
        raise IndexCorruptError(
            f"the index catalog cannot be read ({' '.join(str(exc).split())[:120]}), so its papers cannot be "
            "re-embedded; rebuild from your corpus files: `rag ingest --rebuild FILE...` (the current index "
            "stays until then)"
        ) from exc
