"""The catalog: which papers and chunks are in the index (SQLite, one transaction per batch).

It is the record of what has been committed: Chroma holds the vectors, the lexical index is
derived from the chunks here, and a batch counts as ingested once its transaction commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rag.store.catalog_base import FILTER_SCHEMA, FILTERS_VERSION, SCHEMA, VECTOR_DTYPE, damaged
from rag.store.catalog_lookups import LookupTables
from rag.store.catalog_vectors import VectorTables
from rag.store.datadir import storage_problem
from rag.text import name_key, own_names
from rag.types import Chunk, Paper


class Catalog(VectorTables, LookupTables):
    """Papers, chunks and their sources; the tables of `VectorTables` and `LookupTables`."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            new = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'papers'").fetchone() is None
            self.db.executescript(SCHEMA)
            if new:  # a new catalog starts with every table; an older one gets them from `migrate` (the writer)
                self.db.executescript(FILTER_SCHEMA)
                self.set_meta({"filters_version": FILTERS_VERSION, "vectors_kept": "1"})
            self.inode = os.stat(path).st_ino
        except sqlite3.DatabaseError as exc:
            raise storage_problem(exc, path.parent) or damaged(path, str(exc)) from exc
        self._source_ids: dict[str, int] = {}
        self._author_ids: dict[str, int] = {}
        # An ingest looks papers up in its own thread while its writer thread commits batches.
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def replaced(self) -> bool:
        """Has another file taken this catalog's path since it was opened (a rebuild swapped in)?"""
        try:
            return os.stat(self.path).st_ino != self.inode
        except OSError:
            return True

    def check_integrity(self, max_bytes: int | None = None) -> None:
        """SQLite's quick check: finds damaged pages that plain queries may never touch.

        With `max_bytes`, skipped for larger files (it reads the whole file: ~0.6 s at 100k chunks).
        """
        if max_bytes is not None and self.path.stat().st_size > max_bytes:
            return
        try:
            problem = self.db.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if storage := storage_problem(exc, self.path.parent):
                raise storage from exc
            problem = str(exc)
        if problem != "ok":
            raise damaged(self.path, problem)

    def paper_ids_by_title(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT title_key, paper_id FROM papers"))

    def known_titles(self, title_keys: Sequence[str]) -> dict[str, tuple[str, list[str], str | None]]:
        """title key -> (paper id, sources, where this ingest run read it or None) of the indexed papers
        with these titles (`begin_run` must have been called on this connection)."""
        with self.lock:
            rows = list(
                self._rows_where_in(
                    "SELECT p.title_key, p.paper_id, p.sources, r.place FROM papers p "
                    "LEFT JOIN temp.ingest_run r ON r.paper_id = p.paper_id WHERE p.title_key IN ({})",
                    list(dict.fromkeys(title_keys)),
                )
            )
        return {key: (pid, json.loads(sources), place) for key, pid, sources, place in rows}

    def begin_run(self) -> None:
        """Start remembering which papers this ingest run has read (and where), on disk in SQLite's
        temporary storage rather than in memory: a run may read millions."""
        with self.lock:
            self.db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ingest_run (paper_id TEXT PRIMARY KEY, place TEXT NOT NULL)"
            )
            with self.db:
                self.db.execute("DELETE FROM temp.ingest_run")

    def mark_run(self, places: Sequence[tuple[str, str]]) -> None:
        """Papers (id, place) this run read that were indexed already."""
        with self.lock, self.db:
            self.db.executemany("INSERT OR IGNORE INTO temp.ingest_run VALUES (?, ?)", places)

    def sources_of(self, paper_id: str) -> list[str]:
        row = self.db.execute("SELECT sources FROM papers WHERE paper_id = ?", (paper_id,)).fetchone()
        return json.loads(row[0]) if row else []

    def paper_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT paper_id FROM papers")}

    def paper_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM papers").fetchone()[0]

    def chunk_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def get_papers(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, Paper] = {}
        rows = self._rows_where_in(
            "SELECT paper_id, title, abstract, source, sources, authors, year, url, categories "
            "FROM papers WHERE paper_id IN ({})",
            ids,
        )
        for pid, title, abstract, source, sources, authors, year, url, categories in rows:
            out[pid] = Paper(
                title=title,
                abstract=abstract,
                source=source,
                sources=json.loads(sources),
                authors=json.loads(authors),
                year=year,
                url=url,
                categories=json.loads(categories),
            )
        return out

    def all_papers(self) -> list[Paper]:
        ids = [row[0] for row in self.db.execute("SELECT paper_id FROM papers ORDER BY rowid")]
        return list(self.get_papers(ids).values())

    def source_names(self) -> list[str]:
        if self.filters_ready:
            return sorted(
                row[0]
                for row in self.db.execute(
                    "SELECT name FROM sources WHERE source_id IN (SELECT DISTINCT source_id FROM paper_sources)"
                )
            )
        names: set[str] = set()
        for (sources,) in self.db.execute("SELECT sources FROM papers"):
            names.update(json.loads(sources))
        return sorted(names)

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """chunk id -> (paper id, title, text)."""
        rows = self._rows_where_in(
            "SELECT c.chunk_id, c.paper_id, p.title, c.text FROM chunks c JOIN papers p USING(paper_id) "
            "WHERE c.chunk_id IN ({})",
            list(chunk_ids),
        )
        return {cid: (pid, title, text) for cid, pid, title, text in rows}

    def chunk_ids_of(self, paper_ids: Iterable[str]) -> list[str]:
        return [
            row[0] for row in self._rows_where_in("SELECT chunk_id FROM chunks WHERE paper_id IN ({})", list(paper_ids))
        ]

    def all_chunk_ids(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT chunk_id FROM chunks")]

    def paper_ids_of_chunks(self, chunk_ids: Sequence[str]) -> list[str]:
        rows = self._rows_where_in("SELECT DISTINCT paper_id FROM chunks WHERE chunk_id IN ({})", list(chunk_ids))
        return list(dict.fromkeys(row[0] for row in rows))

    def iter_chunks(self) -> list[tuple[str, str, str]]:
        """Every chunk as (chunk id, title, text), in a stable order."""
        return list(
            self.db.execute(
                "SELECT c.chunk_id, p.title, c.text FROM chunks c JOIN papers p USING(paper_id) ORDER BY c.rowid"
            )
        )

    def iter_papers(self) -> list[tuple[str, str, str]]:
        """Every paper as (paper id, title, abstract), in a stable order."""
        return list(self.db.execute("SELECT paper_id, title, abstract FROM papers ORDER BY rowid"))

    def commit_batch(
        self,
        papers: Sequence[Paper],
        chunks: Sequence[Chunk],
        removed: Sequence[str],
        vectors: np.ndarray | None = None,
        places: Sequence[str] | None = None,
        paper_vectors: np.ndarray | None = None,
    ) -> None:
        """One atomic step: drop replaced papers, record new papers and their chunks (with their vectors,
        row i of `vectors` for chunk i, and the papers' whole-abstract vectors, row i of `paper_vectors`
        for paper i); with `places`, where this ingest run read each paper (see `begin_run`)."""
        if vectors is not None and len(vectors) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if paper_vectors is not None and len(paper_vectors) != len(papers):
            raise ValueError(f"{len(papers)} papers but {len(paper_vectors)} paper vectors")
        blobs = [None] * len(chunks) if vectors is None else [row.tobytes() for row in vectors.astype(VECTOR_DTYPE)]
        filters = self.filters_ready
        with self.lock, self._transaction():
            if places is not None:
                self.db.executemany(
                    "INSERT OR REPLACE INTO temp.ingest_run VALUES (?, ?)",
                    [(p.paper_id, place) for p, place in zip(papers, places) if place],
                )
            self.db.executemany("DELETE FROM papers WHERE paper_id = ?", [(pid,) for pid in removed])
            self.db.executemany(
                "INSERT OR REPLACE INTO papers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.paper_id,
                        p.title_key,
                        p.title,
                        p.abstract,
                        p.source,
                        json.dumps(p.sources),
                        json.dumps(p.authors),
                        p.year,
                        p.url,
                        json.dumps(p.categories),
                    )
                    for p in papers
                ],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO chunks(chunk_id, paper_id, position, text, vector) VALUES (?, ?, ?, ?, ?)",
                [(c.chunk_id, c.paper_id, c.position, c.text, blob) for c, blob in zip(chunks, blobs)],
            )
            if paper_vectors is not None:
                self.db.executemany(
                    "INSERT OR REPLACE INTO paper_vectors VALUES (?, ?)",
                    [(p.paper_id, row.tobytes()) for p, row in zip(papers, paper_vectors.astype(VECTOR_DTYPE))],
                )
            if filters:
                for p in papers:
                    self._link(p.paper_id, p.sources, p.authors)
            if vectors is None and chunks:
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('vectors_kept', '0')")
            self.db.executemany(
                "INSERT OR IGNORE INTO paper_names VALUES (?, ?)",
                [(name_key(n), p.paper_id) for p in papers for n in own_names(p.title, p.abstract)],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", (str(self.generation + 1),)
            )

    def set_sources(self, updates: dict[str, list[str]]) -> None:
        filters = self.filters_ready
        with self.lock, self._transaction():
            self.db.executemany(
                "UPDATE papers SET sources = ? WHERE paper_id = ?",
                [(json.dumps(sources), pid) for pid, sources in updates.items()],
            )
            if filters:
                for pid, sources in updates.items():
                    self._link(pid, sources, None)
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('sources_version', ?)",
                (str(self.sources_version + 1),),
            )
