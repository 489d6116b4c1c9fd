"""The catalog: which papers and chunks are in the index (SQLite, one transaction per batch).

It is the record of what has been committed: Chroma holds the vectors, the lexical index is
derived from the chunks here, and a batch counts as ingested once its transaction commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .datadir import storage_problem
from .errors import IndexCorruptError
from .text import name_key, own_names
from .types import Chunk, Paper

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS papers (
    paper_id TEXT PRIMARY KEY,
    title_key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    abstract TEXT NOT NULL,
    source TEXT NOT NULL,
    sources TEXT NOT NULL,
    authors TEXT NOT NULL,
    year INTEGER,
    url TEXT,
    categories TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    paper_id TEXT NOT NULL REFERENCES papers(paper_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_paper ON chunks(paper_id);
CREATE TABLE IF NOT EXISTS paper_names (
    name_key TEXT NOT NULL,
    paper_id TEXT NOT NULL REFERENCES papers(paper_id) ON DELETE CASCADE,
    PRIMARY KEY (name_key, paper_id)
);
CREATE INDEX IF NOT EXISTS names_by_paper ON paper_names(paper_id);
"""
NAMES_VERSION = "2"  # bump when `own_names` changes: the next ingest recomputes the table


def committed_paper_ids(path: Path) -> set[str]:
    """The paper ids committed in the catalog at `path`, read without taking part in writes
    (for watching an ingest from outside); empty if there is no catalog yet."""
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            return {row[0] for row in db.execute("SELECT paper_id FROM papers")}
    except sqlite3.OperationalError:  # created, but no table yet
        return set()


def damaged(path: Path, problem: str) -> IndexCorruptError:
    problem = " ".join(problem.split())[:100]
    return IndexCorruptError(
        f"the index catalog {path} is damaged ({problem}); rebuild it from your corpus files with "
        "`rag ingest --rebuild [FILE...]` (the damaged index stays until the new one is complete)"
    )


class Catalog:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(SCHEMA)
            self.inode = os.stat(path).st_ino
        except sqlite3.DatabaseError as exc:
            raise storage_problem(exc, path.parent) or damaged(path, str(exc)) from exc

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

    def _rows_where_in(self, query: str, ids: Sequence[str]) -> Iterator[tuple]:
        """Rows of `query` (ending in `IN ({})`) for all `ids`, in batches under SQLite's variable limit."""
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            yield from self.db.execute(query.format(",".join("?" * len(part))), part)

    # --- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, values: dict[str, object]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [(k, str(v)) for k, v in values.items()],
            )

    @property
    def generation(self) -> int:
        """Bumped by every commit that changes chunks; the lexical index records the one it saw."""
        return int(self.get_meta("generation") or 0)

    # --- papers -------------------------------------------------------------------------
    def paper_ids_by_title(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT title_key, paper_id FROM papers"))

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
            "FROM papers WHERE paper_id IN ({})", ids,
        )
        for pid, title, abstract, source, sources, authors, year, url, categories in rows:
            out[pid] = Paper(
                title=title, abstract=abstract, source=source, sources=json.loads(sources),
                authors=json.loads(authors), year=year, url=url, categories=json.loads(categories),
            )
        return out

    def all_papers(self) -> list[Paper]:
        ids = [row[0] for row in self.db.execute("SELECT paper_id FROM papers ORDER BY rowid")]
        return list(self.get_papers(ids).values())

    def source_names(self) -> list[str]:
        names: set[str] = set()
        for (sources,) in self.db.execute("SELECT sources FROM papers"):
            names.update(json.loads(sources))
        return sorted(names)

    # --- chunks -------------------------------------------------------------------------
    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """chunk id -> (paper id, title, text)."""
        rows = self._rows_where_in(
            "SELECT c.chunk_id, c.paper_id, p.title, c.text FROM chunks c JOIN papers p USING(paper_id) "
            "WHERE c.chunk_id IN ({})", list(chunk_ids),
        )
        return {cid: (pid, title, text) for cid, pid, title, text in rows}

    def chunk_ids_of(self, paper_ids: Iterable[str]) -> list[str]:
        return [row[0] for row in self._rows_where_in("SELECT chunk_id FROM chunks WHERE paper_id IN ({})", list(paper_ids))]

    def all_chunk_ids(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT chunk_id FROM chunks")]

    def paper_ids_of_chunks(self, chunk_ids: Sequence[str]) -> list[str]:
        rows = self._rows_where_in("SELECT DISTINCT paper_id FROM chunks WHERE chunk_id IN ({})", list(chunk_ids))
        return list(dict.fromkeys(row[0] for row in rows))

    def iter_chunks(self) -> list[tuple[str, str, str]]:
        """Every chunk as (chunk id, title, text), in a stable order."""
        return list(self.db.execute(
            "SELECT c.chunk_id, p.title, c.text FROM chunks c JOIN papers p USING(paper_id) ORDER BY c.rowid"
        ))

    def iter_papers(self) -> list[tuple[str, str, str]]:
        """Every paper as (paper id, title, abstract), in a stable order."""
        return list(self.db.execute("SELECT paper_id, title, abstract FROM papers ORDER BY rowid"))

    def chunk_ids_matching(self, source: str | None, year: int | None) -> set[str]:
        query = "SELECT c.chunk_id, p.sources, p.year FROM chunks c JOIN papers p USING(paper_id)"
        out = set()
        for cid, sources, paper_year in self.db.execute(query):
            if year is not None and paper_year != year:
                continue
            if source is not None and not any(source in s for s in json.loads(sources)):
                continue
            out.add(cid)
        return out

    # --- names ------------------------------------------------------------------------
    def papers_named(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """name key -> the papers that go by that name (their title's lead, a method their abstract introduces)."""
        out: dict[str, list[str]] = {}
        for key, pid in self._rows_where_in("SELECT name_key, paper_id FROM paper_names WHERE name_key IN ({})",
                                             list(dict.fromkeys(keys))):
            out.setdefault(key, []).append(pid)
        return out

    def index_names(self) -> int:
        """(Re)compute the names table if it is missing or older than `own_names`; the number of papers done."""
        if self.get_meta("names_version") == NAMES_VERSION:
            return 0
        rows = list(self.db.execute("SELECT paper_id, title, abstract FROM papers"))
        with self.db:
            self.db.execute("DELETE FROM paper_names")
            self.db.executemany("INSERT OR IGNORE INTO paper_names VALUES (?, ?)",
                                [(name_key(n), pid) for pid, title, abstract in rows for n in own_names(title, abstract)])
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('names_version', ?)", (NAMES_VERSION,))
        return len(rows)

    # --- writes -------------------------------------------------------------------------
    def commit_batch(self, papers: Sequence[Paper], chunks: Sequence[Chunk], removed: Sequence[str]) -> None:
        """One atomic step: drop replaced papers, record new papers and their chunks."""
        with self.db:
            self.db.executemany("DELETE FROM papers WHERE paper_id = ?", [(pid,) for pid in removed])
            self.db.executemany(
                "INSERT OR REPLACE INTO papers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (p.paper_id, p.title_key, p.title, p.abstract, p.source, json.dumps(p.sources),
                     json.dumps(p.authors), p.year, p.url, json.dumps(p.categories))
                    for p in papers
                ],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)",
                [(c.chunk_id, c.paper_id, c.position, c.text) for c in chunks],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO paper_names VALUES (?, ?)",
                [(name_key(n), p.paper_id) for p in papers for n in own_names(p.title, p.abstract)],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", (str(self.generation + 1),)
            )

    def set_sources(self, updates: dict[str, list[str]]) -> None:
        with self.db:
            self.db.executemany(
                "UPDATE papers SET sources = ? WHERE paper_id = ?",
                [(json.dumps(sources), pid) for pid, sources in updates.items()],
            )
