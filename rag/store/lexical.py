"""The lexical side: a BM25 index (bm25s) over whole papers (title and abstract), saved on disk.

Whole papers rather than chunks: a question's words are often spread over an abstract (measured on
dev/val, BENCHMARKS "Retrieval").
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from rag.text import tokenize

UNIT = "paper"  # what a document is; an index saved with another unit is rebuilt


class LexicalIndex:
    """BM25 over documents; `doc_ids[i]` is the paper of document i. `generation` ties it to the catalog."""

    def __init__(self, retriever, doc_ids: list[str], generation: int):
        self.retriever = retriever
        self.doc_ids = doc_ids
        self.generation = generation
        self._position = {did: i for i, did in enumerate(doc_ids)}

    @classmethod
    def build(cls, doc_ids: list[str], texts: list[str], generation: int) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25()
        if texts:
            retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, list(doc_ids), generation)

    def save(self, directory: Path) -> None:
        """Write to a sibling temp dir, then swap it in, so a crash never leaves half an index."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.doc_ids:
            self.retriever.save(str(tmp))
        (tmp / "docs.json").write_text(
            json.dumps({"generation": self.generation, "unit": UNIT, "doc_ids": self.doc_ids}), encoding="utf-8"
        )
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        """The saved index, or None if missing or unreadable (the caller rebuilds it)."""
        import bm25s

        try:
            meta = json.loads((directory / "docs.json").read_text(encoding="utf-8"))
            if meta.get("unit") != UNIT:
                return None
            doc_ids = list(meta["doc_ids"])
            retriever = bm25s.BM25.load(str(directory)) if doc_ids else bm25s.BM25()
            return cls(retriever, doc_ids, int(meta["generation"]))
        except Exception:
            return None

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top documents by BM25 as (doc id, score); `allowed` is a 0/1 mask over documents."""
        scores = self.score_all(query, allowed)
        return [] if scores is None else self.top(scores, k)

    def score_all(self, query: str, allowed: np.ndarray | None = None) -> np.ndarray | None:
        """Every document's BM25 score (0 where `allowed` is 0); None if no query word is indexed."""
        if not self.doc_ids:
            return None
        tokens = [t for t in tokenize([query])[0] if t in self.retriever.vocab_dict]
        if not tokens:
            return None
        # Score all documents directly: bm25s' batch `retrieve` starts a thread pool and a progress
        # bar per call, several times the cost of the scoring for one query.
        return self.retriever.get_scores(tokens, weight_mask=allowed)

    def top(self, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k best of `score_all`'s scores as (doc id, score), best first, zeros left out."""
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties in index order
        return [(self.doc_ids[d], float(scores[d])) for d in top if scores[d] > 0]

    @property
    def position(self) -> dict[str, int]:
        """doc id -> its document number."""
        return self._position

    def mask_for(self, doc_ids: set[str]) -> np.ndarray:
        mask = np.zeros(len(self.doc_ids), dtype=np.float32)
        for did in doc_ids:
            position = self._position.get(did)
            if position is not None:
                mask[position] = 1.0
        return mask
