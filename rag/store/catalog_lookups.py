"""What the catalog looks papers up by: years, sources and authors (the filter tables, with their
migration from catalogs older than them) and the names papers go by."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from rag.store.catalog_base import FILTER_SCHEMA, FILTERS_VERSION, NAMES_VERSION, CatalogBase, author_key
from rag.text import name_key, own_names


class LookupTables(CatalogBase):
    @property
    def filters_ready(self) -> bool:
        """Are the source and author tables filled (else filters read the papers' JSON columns)?"""
        return self.get_meta("filters_version") == FILTERS_VERSION

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
