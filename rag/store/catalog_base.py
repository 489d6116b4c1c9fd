"""What the catalog's tables share: the schema, the SQLite connection and its lock, batched `IN`
queries, transactions and the meta table (the catalog is `rag.store.catalog.Catalog`)."""

from __future__ import annotations

import sqlite3
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from rag.errors import IndexCorruptError
from rag.types import normalise_text

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
    text TEXT NOT NULL,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS chunks_by_paper ON chunks(paper_id);
CREATE TABLE IF NOT EXISTS paper_names (
    name_key TEXT NOT NULL,
    paper_id TEXT NOT NULL REFERENCES papers(paper_id) ON DELETE CASCADE,
    PRIMARY KEY (name_key, paper_id)
);
CREATE INDEX IF NOT EXISTS names_by_paper ON paper_names(paper_id);
CREATE TABLE IF NOT EXISTS paper_vectors (
    paper_id TEXT PRIMARY KEY REFERENCES papers(paper_id) ON DELETE CASCADE,
    vector BLOB NOT NULL
) WITHOUT ROWID;
"""
NAMES_VERSION = "2"  # bump when `own_names` changes: the next ingest recomputes the table
# What filters (`--source`, `--author`, `--year`/`--since`/`--until`) read: sources and authors as
# tables, indexed both ways. A catalog from before them gets them from the next ingest (the writer
# fills them from the papers' JSON columns); until then readers filter from those columns.
FILTER_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (source_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS paper_sources (
    paper_id TEXT NOT NULL REFERENCES papers(paper_id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL,
    PRIMARY KEY (paper_id, source_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS papers_by_source ON paper_sources(source_id);
CREATE INDEX IF NOT EXISTS papers_by_year ON papers(year);
CREATE TABLE IF NOT EXISTS authors (author_id INTEGER PRIMARY KEY, name_key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS author_words (
    word TEXT NOT NULL,
    author_id INTEGER NOT NULL,
    PRIMARY KEY (word, author_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS paper_authors (
    paper_id TEXT NOT NULL REFERENCES papers(paper_id) ON DELETE CASCADE,
    author_id INTEGER NOT NULL,
    PRIMARY KEY (paper_id, author_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS papers_by_author ON paper_authors(author_id);
"""
FILTERS_VERSION = "1"  # bump when FILTER_SCHEMA or `author_key` changes: the next ingest refills the tables
VECTOR_DTYPE = np.float16  # chunk vectors kept in the catalog (for filtered searches), 2 bytes a dimension


def author_key(name: str) -> str:
    """An author's name as looked up: case, accents and punctuation do not matter ("Schölkopf, B." = "scholkopf b")."""
    decomposed = unicodedata.normalize("NFKD", name)
    return normalise_text("".join(c for c in decomposed if not unicodedata.combining(c)))


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


def committed_paper_count(path: Path) -> int:
    """How many papers the catalog at `path` has committed, read through a connection of its own (so from
    any thread, beside a writer); 0 if there is no catalog yet."""
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            return int(db.execute("SELECT COUNT(*) FROM papers").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # created, but no table yet
            return 0
        raise


def damaged(path: Path, problem: str) -> IndexCorruptError:
    problem = " ".join(problem.split())[:100]
    return IndexCorruptError(
        f"the index catalog {path} is damaged ({problem}); rebuild it from your corpus files with "
        "`rag ingest --rebuild [FILE...]` (the damaged index stays until the new one is complete)"
    )


class CatalogBase:
    """The connection and what every table of the catalog uses."""

    path: Path
    db: sqlite3.Connection
    lock: threading.RLock  # an ingest looks papers up in its own thread while its writer thread commits
    _source_ids: dict[str, int]
    _author_ids: dict[str, int]

    def _rows_where_in(self, query: str, ids: Sequence[str] | Sequence[int]) -> Iterator[tuple]:
        """Rows of `query` (ending in `IN ({})`) for all `ids`, in batches under SQLite's variable limit."""
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            yield from self.db.execute(query.format(",".join("?" * len(part))), part)

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

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; a rollback also forgets the name ids it may have handed out."""
        try:
            with self.db:
                yield
        except BaseException:
            self._source_ids.clear()
            self._author_ids.clear()
            raise
        if len(self._author_ids) > 200_000:  # a large corpus has millions of authors: keep the cache small
            self._author_ids.clear()
