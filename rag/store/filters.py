"""Search filters (`--source`, `--author`, `--year`, `--since`, `--until`) answered by arrays, not scans.

A filter is a property of papers. `PaperTable` holds, for one state of the catalog, each paper's
year and sources as numpy arrays in the order of the BM25 documents, so that a filter becomes a
boolean mask over papers with a few array operations (no loop over the corpus per query): the
mask weighs BM25's scores directly and decides how the dense side is searched (see `rag.answer.retrieve`).
Authors are looked up in the catalog's author tables (a name matches few papers).
`FilteredVectors` keeps the vectors of the chunks a filter keeps, so that the dense side of the
next search under the same filter is an exact scan in memory.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from rag.store.catalog import Catalog


@dataclass(frozen=True)
class Filters:
    """Which papers a search may return; None means any."""

    source: str | None = None  # a source (file) whose name contains this text
    author: str | None = None  # an author whose name holds these words ("hinton", "Geoffrey Hinton")
    since: int | None = None  # published in this year or later
    until: int | None = None  # published in this year or earlier

    @classmethod
    def of(
        cls,
        *,
        source: str | None = None,
        author: str | None = None,
        year: int | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> Filters:
        """`year` is since = until = year (combined with since/until if given too)."""
        if year is not None:
            since = year if since is None else max(since, year)
            until = year if until is None else min(until, year)
        return cls(source=source or None, author=(author or "").strip() or None, since=since, until=until)

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.source, self.author, self.since, self.until))


class PaperTable:
    """Years and sources of the papers, position i being BM25 document i (`doc_ids[i]`)."""

    def __init__(
        self,
        key: tuple[int, int],
        doc_ids: Sequence[str],
        position: Mapping[str, int],
        years: np.ndarray,
        source_names: dict[int, str],
        src_ptr: np.ndarray,
        src_pos: np.ndarray,
        chunks: int,
    ):
        self.key = key  # (catalog generation, sources version) it was read at
        self.doc_ids = doc_ids
        self.position = position
        self.years = years  # 0: unknown
        self.source_names = source_names
        self.src_ptr = src_ptr  # papers of source s: src_pos[src_ptr[s]:src_ptr[s + 1]]
        self.src_pos = src_pos
        self.chunks = chunks  # chunks in the catalog, for the share of them a filter keeps

    @classmethod
    def load(
        cls, catalog: Catalog, key: tuple[int, int], doc_ids: Sequence[str], position: Mapping[str, int]
    ) -> PaperTable:
        """One pass over the catalog's papers and their sources (per catalog state, not per query)."""
        years = np.zeros(len(doc_ids), dtype=np.int32)
        for pid, year in catalog.paper_years():
            i = position.get(pid)
            if i is not None and year:
                years[i] = year
        names, links = catalog.source_links()
        at = np.fromiter((position.get(pid, -1) for pid, _ in links), dtype=np.int64, count=len(links))
        sid = np.fromiter((s for _, s in links), dtype=np.int64, count=len(links))
        keep = at >= 0
        at, sid = at[keep], sid[keep]
        order = np.argsort(sid, kind="stable")
        counts = np.bincount(sid, minlength=max(names, default=-1) + 1)
        src_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(key, doc_ids, position, years, names, src_ptr, at[order].astype(np.int32), catalog.chunk_count())

    def __len__(self) -> int:
        return len(self.doc_ids)

    def mask(self, filters: Filters, catalog: Catalog) -> np.ndarray:
        """Boolean mask over papers: True where the paper passes every filter."""
        keep = np.ones(len(self), dtype=bool)
        if filters.since is not None:
            keep &= self.years >= filters.since
        if filters.until is not None:
            keep &= (self.years <= filters.until) & (self.years > 0)
        if filters.source is not None:
            from_source = np.zeros(len(self), dtype=bool)
            for sid, name in self.source_names.items():
                if filters.source in name:
                    from_source[self._positions_of_source(sid)] = True
            keep &= from_source
        if filters.author is not None:
            by_author = np.zeros(len(self), dtype=bool)
            found = [i for pid in catalog.papers_by_author(filters.author) if (i := self.position.get(pid)) is not None]
            by_author[np.asarray(found, dtype=np.int64)] = True
            keep &= by_author
        return keep

    def why_empty(self, filters: Filters, catalog: Catalog) -> str:
        """Why `filters` keep no paper, in words a user can act on (each filter is tried on its own)."""
        reasons = []
        if filters.source is not None and not self.mask(Filters(source=filters.source), catalog).any():
            names = sorted(name for sid, name in self.source_names.items() if len(self._positions_of_source(sid)))
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            reasons.append(f"no source's name contains {filters.source!r} (sources: {shown or 'none'})")
        years = Filters(since=filters.since, until=filters.until)
        if years and not self.mask(years, catalog).any():
            known = self.years[self.years > 0]
            if not known.size:
                reasons.append("no paper in the index has a year (none of its sources gave one)")
            else:
                reasons.append(f"no paper is {_year_span(years)} (the papers' years: {known.min()}-{known.max()})")
        if filters.author is not None and not self.mask(Filters(author=filters.author), catalog).any():
            reasons.append(f"no author's name holds the words {filters.author!r}")
        return "; ".join(reasons) or "no paper passes all of these filters together"

    def _positions_of_source(self, sid: int) -> np.ndarray:
        """Positions of the papers of source `sid` (none for a source no paper links to any more)."""
        if sid + 1 >= len(self.src_ptr):
            return self.src_pos[:0]
        return self.src_pos[self.src_ptr[sid] : self.src_ptr[sid + 1]]

    def papers(self, mask: np.ndarray) -> list[str]:
        return [self.doc_ids[int(i)] for i in np.flatnonzero(mask)]


def _year_span(years: Filters) -> str:
    if years.since == years.until:
        return f"from {years.since}"
    if years.until is None:
        return f"from {years.since} or later"
    if years.since is None:
        return f"from {years.until} or earlier"
    return f"from {years.since} to {years.until}"


@dataclass(frozen=True)
class KeptVectors:
    """The chunks a filter keeps, with their vectors scaled to unit length (float32 rows)."""

    ids: list[str]
    unit: np.ndarray

    @classmethod
    def of(cls, ids: list[str], matrix: np.ndarray) -> KeptVectors:
        unit = np.ascontiguousarray(matrix, dtype=np.float32)
        unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        return cls(ids, unit)

    def nearest(self, vector: np.ndarray, n: int, rows: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The n chunks nearest to `vector` by cosine, best first (ties in catalog order); among the
        rows where `rows` (a boolean mask over `ids`) is True, if given."""
        if not self.ids or n <= 0:
            return []
        query = vector.astype(np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
        # One BLAS thread: OpenBLAS's extra threads spin on after a product, and on a small machine
        # that slowed everything else in the search (query embedding, BM25) by ~1.7x, measured.
        with one_blas_thread():
            scores = self.unit @ query
        among = np.arange(len(scores)) if rows is None else np.flatnonzero(rows)
        if n < len(among):
            among = among[np.argpartition(-scores[among], n - 1)[:n]]
        top = among[np.lexsort((among, -scores[among]))]
        return [(self.ids[i], float(scores[i])) for i in top]


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread (see `KeptVectors.nearest`)."""
    return _blas().limit(limits=1, user_api="blas")


class FilteredVectors:
    """`KeptVectors` of the last few filters searched (least recently used first out), at most `max_bytes`.

    A chat or a server asks many questions under the same filter: reading the kept vectors from the
    catalog costs ~7 us a chunk (0.17 s for 25k chunks of a 1M-chunk index), scanning them in memory
    ~0.1 us (BENCHMARKS "Scale"). Entries belong to one `PaperTable` (one state of the catalog and
    its sources): a search with a new table (after an ingest) empties the cache.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._table: PaperTable | None = None
        self._entries: OrderedDict[bytes, KeptVectors] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, table: PaperTable, mask: np.ndarray, load: Callable[[], KeptVectors | None]) -> KeptVectors | None:
        key = np.packbits(mask).tobytes()
        with self._lock:
            if self._table is not table:
                self._entries.clear()
                self._table = table
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        kept = load()
        if kept is None or kept.unit.nbytes > self.max_bytes:
            return kept
        with self._lock:
            if self._table is not table:
                return kept  # an ingest replaced the table while this one loaded
            self._entries[key] = kept
            while sum(e.unit.nbytes for e in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)
        return kept
