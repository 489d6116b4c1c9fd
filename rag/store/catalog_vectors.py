"""The vectors the catalog keeps: each chunk's (float16, for exact and filtered searches) and each
paper's whole-abstract vector (the paper model's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.store.catalog_base import VECTOR_DTYPE, CatalogBase


class VectorTables(CatalogBase):
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

    @property
    def vectors_kept(self) -> bool:
        """Does every chunk row hold its vector?"""
        return self.get_meta("vectors_kept") == "1"

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
