"""The catalog: which papers and chunks are in the index (SQLite, one transaction per batch).

It is the record of what has been committed: Chroma holds the vectors, the lexical index is
derived from the chunks here, and a batch counts as ingested once its transaction commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rag.errors import IndexCorruptError
from rag.store.datadir import storage_problem
from rag.text import name_key, own_names
from rag.types import Chunk, Paper, normalise_text

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

    def _rows_where_in(self, query: str, ids: Sequence[str] | Sequence[int]) -> Iterator[tuple]:
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

    # --- chunks -------------------------------------------------------------------------
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

    def chunk_vectors(self, paper_ids: Sequence[str]) -> tuple[list[str], np.ndarray] | None:
        """The chunks of these papers with their vectors (float32 rows), or None if some have none kept."""
        ids: list[str] = []
        blobs: list[bytes] = []
        for cid, blob in self._rows_where_in(
            "SELECT chunk_id, vector FROM chunks WHERE paper_id IN ({})", list(paper_ids)
        ):
            if blob is None:
                return None
            ids.append(cid)
            blobs.append(blob)
        matrix = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(ids), -1) if blobs else np.zeros((0, 0))
        return ids, matrix.astype(np.float32)

    def all_chunk_vectors(self) -> tuple[list[str], np.ndarray] | None:
        """Every chunk with its vector (float32 rows, catalog order), or None if some have none kept."""
        ids: list[str] = []
        blobs: list[bytes] = []
        for cid, blob in self.db.execute("SELECT chunk_id, vector FROM chunks ORDER BY rowid"):
            if blob is None:
                return None
            ids.append(cid)
            blobs.append(blob)
        matrix = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(ids), -1) if blobs else np.zeros((0, 0))
        return ids, matrix.astype(np.float32)

    def sample_chunk_vectors(self, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """About n chunks picked at random (seeded) with their kept vectors (chunks without one are left out)."""
        top = self.db.execute("SELECT MAX(rowid) FROM chunks").fetchone()[0] or 0
        rng = np.random.default_rng(seed)
        # twice as many row ids as wanted, for the gaps deleted rows leave; every row of a small table
        rowids = sorted(int(r) + 1 for r in rng.choice(top, size=min(2 * n, top), replace=False)) if top else []
        ids: list[str] = []
        blobs: list[bytes] = []
        for cid, blob in self._rows_where_in("SELECT chunk_id, vector FROM chunks WHERE rowid IN ({})", rowids):
            if blob is not None and len(ids) < n:
                ids.append(cid)
                blobs.append(blob)
        matrix = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(ids), -1) if blobs else np.zeros((0, 0))
        return ids, matrix.astype(np.float32)

    # --- whole-abstract vectors (the paper embedding model's) ---------------------------
    def paper_vector_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM paper_vectors").fetchone()[0]

    def papers_without_vector(self, limit: int) -> list[str]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT paper_id FROM papers WHERE paper_id NOT IN (SELECT paper_id FROM paper_vectors) "
                "ORDER BY rowid LIMIT ?",
                (limit,),
            )
        ]

    def set_paper_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        """Writer only: keep these papers' whole-abstract vectors."""
        with self.lock, self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO paper_vectors VALUES (?, ?)",
                [(pid, np.asarray(v, dtype=VECTOR_DTYPE).tobytes()) for pid, v in vectors.items()],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", (str(self.generation + 1),)
            )

    def clear_paper_vectors(self, model: str) -> None:
        """Writer only: forget every paper vector; the ones to come are `model`'s."""
        with self.lock, self._transaction():
            self.db.execute("DELETE FROM paper_vectors")
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('paper_model', ?)", (model,))

    def all_paper_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every paper vector (float16 rows, catalog order of the vectors)."""
        ids: list[str] = []
        blobs: list[bytes] = []
        for pid, blob in self.db.execute("SELECT paper_id, vector FROM paper_vectors"):
            ids.append(pid)
            blobs.append(blob)
        if not blobs:
            return ids, np.zeros((0, 0), dtype=VECTOR_DTYPE)
        return ids, np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(ids), -1)

    # --- filters ----------------------------------------------------------------------
    @property
    def filters_ready(self) -> bool:
        """Are the source and author tables filled (else filters read the papers' JSON columns)?"""
        return self.get_meta("filters_version") == FILTERS_VERSION

    @property
    def vectors_kept(self) -> bool:
        """Does every chunk row hold its vector?"""
        return self.get_meta("vectors_kept") == "1"

    @property
    def sources_version(self) -> int:
        """Bumped by every change of a known paper's sources (which does not change the chunks)."""
        return int(self.get_meta("sources_version") or 0)

    def paper_years(self) -> Iterator[tuple[str, int | None]]:
        return iter(self.db.execute("SELECT paper_id, year FROM papers"))

    def source_links(self) -> tuple[dict[int, str], list[tuple[str, int]]]:
        """(source id -> name, [(paper id, source id)]) for every paper."""
        if self.filters_ready:
            names = dict(self.db.execute("SELECT source_id, name FROM sources"))
            return names, list(self.db.execute("SELECT paper_id, source_id FROM paper_sources"))
        ids: dict[str, int] = {}  # a catalog from before the tables: from the JSON column
        links = [
            (pid, ids.setdefault(name, len(ids)))
            for pid, sources in self.db.execute("SELECT paper_id, sources FROM papers")
            for name in json.loads(sources)
        ]
        return {i: name for name, i in ids.items()}, links

    def papers_by_author(self, name: str) -> list[str]:
        """The papers with an author whose name holds every word of `name` ("hinton", "Geoffrey Hinton")."""
        words = author_key(name).split()
        if not words:
            return []
        if self.filters_ready:
            matching = " INTERSECT ".join(["SELECT author_id FROM author_words WHERE word = ?"] * len(words))
            query = f"SELECT DISTINCT paper_id FROM paper_authors WHERE author_id IN ({matching})"
            return [row[0] for row in self.db.execute(query, words)]
        wanted = set(words)
        return [
            pid
            for pid, authors in self.db.execute("SELECT paper_id, authors FROM papers")
            if any(wanted <= set(author_key(a).split()) for a in json.loads(authors))
        ]

    def migrate(self) -> bool:
        """Writer only: create and fill the filter tables of a catalog from before them (and the chunks'
        vector column). One transaction; True if there was anything to do."""
        if self.filters_ready:
            return False
        with self._transaction():
            for statement in FILTER_SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            if "vector" not in {row[1] for row in self.db.execute("PRAGMA table_info(chunks)")}:
                self.db.execute("ALTER TABLE chunks ADD COLUMN vector BLOB")
            rows = self.db.execute("SELECT paper_id, sources, authors FROM papers").fetchall()
            self.db.execute("DELETE FROM paper_sources")
            self.db.execute("DELETE FROM paper_authors")
            for pid, sources, authors in rows:
                self._link(pid, json.loads(sources), json.loads(authors))
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('filters_version', ?)", (FILTERS_VERSION,))
        return True

    def chunks_without_vectors(self, limit: int, after: str = "") -> list[str]:
        """Chunk ids (in order, after `after`) whose vector the catalog does not keep."""
        return [
            row[0]
            for row in self.db.execute(
                "SELECT chunk_id FROM chunks WHERE vector IS NULL AND chunk_id > ? ORDER BY chunk_id LIMIT ?",
                (after, limit),
            )
        ]

    def set_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        """Writer only: keep these chunks' vectors (filling a catalog from before they were kept)."""
        with self.db:
            self.db.executemany(
                "UPDATE chunks SET vector = ? WHERE chunk_id = ?",
                [(np.asarray(v, dtype=VECTOR_DTYPE).tobytes(), cid) for cid, v in vectors.items()],
            )

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

    def _id_of(self, table: str, column: str, key: str, cache: dict[str, int]) -> int:
        """The id of a source (or author) name, created if new; inside the caller's transaction."""
        found = cache.get(key)
        if found is None:
            row = self.db.execute(f"SELECT rowid FROM {table} WHERE {column} = ?", (key,)).fetchone()
            created = None if row else self.db.execute(f"INSERT INTO {table}({column}) VALUES (?)", (key,)).lastrowid
            found = int(row[0] if row else created or 0)
            cache[key] = found
        return found

    def _link(self, paper_id: str, sources: Sequence[str], authors: Sequence[str] | None) -> None:
        """Record a paper's sources (and authors) in the filter tables; inside the caller's transaction."""
        self.db.execute("DELETE FROM paper_sources WHERE paper_id = ?", (paper_id,))
        self.db.executemany(
            "INSERT OR IGNORE INTO paper_sources VALUES (?, ?)",
            [(paper_id, self._id_of("sources", "name", s, self._source_ids)) for s in sources],
        )
        if authors is None:
            return
        self.db.execute("DELETE FROM paper_authors WHERE paper_id = ?", (paper_id,))
        for author in authors:
            key = author_key(author)
            if not key:
                continue
            known = key in self._author_ids
            author_id = self._id_of("authors", "name_key", key, self._author_ids)
            if not known:
                self.db.executemany(
                    "INSERT OR IGNORE INTO author_words VALUES (?, ?)", [(word, author_id) for word in set(key.split())]
                )
            self.db.execute("INSERT OR IGNORE INTO paper_authors VALUES (?, ?)", (paper_id, author_id))

    # --- names ------------------------------------------------------------------------
    def papers_named(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """name key -> the papers that go by that name (their title's lead, a method their abstract introduces)."""
        out: dict[str, list[str]] = {}
        for key, pid in self._rows_where_in(
            "SELECT name_key, paper_id FROM paper_names WHERE name_key IN ({})", list(dict.fromkeys(keys))
        ):
            out.setdefault(key, []).append(pid)
        return out

    def index_names(self) -> int:
        """(Re)compute the names table if it is missing or older than `own_names`; the number of papers done."""
        if self.get_meta("names_version") == NAMES_VERSION:
            return 0
        rows = list(self.db.execute("SELECT paper_id, title, abstract FROM papers"))
        with self.db:
            self.db.execute("DELETE FROM paper_names")
            self.db.executemany(
                "INSERT OR IGNORE INTO paper_names VALUES (?, ?)",
                [(name_key(n), pid) for pid, title, abstract in rows for n in own_names(title, abstract)],
            )
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('names_version', ?)", (NAMES_VERSION,))
        return len(rows)

    # --- writes -------------------------------------------------------------------------
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
