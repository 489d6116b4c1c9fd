"""Hybrid retrieval: dense (Chroma) and BM25 rankings fused by reciprocal rank, one hit per paper."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .filters import FilteredVectors, Filters, KeptVectors, PaperTable
from .index import Index
from .settings import Settings
from .text import content_words, name_key, name_spans, tokenize
from .types import Hit

# A name more papers than this go by ("Transformer") names no paper in particular.
MAX_NAMESAKES = 3
# Dense search under a filter (see `Retriever._dense`). Chroma's top-k costs ~8 us per neighbour at
# 1M chunks (4 ms for 500, 16.5 ms for 2,000); reading kept vectors from the catalog ~7 us per chunk
# (once per filter: they are then held in memory, up to FILTERED_VECTORS_BYTES of float32, 64k chunks
# of 384 dimensions) and scanning them in memory ~0.1 us per chunk (BENCHMARKS "Scale").
OVERFETCH = 1.5  # a filter keeping a share s of the chunks fetches Chroma's top n / s * OVERFETCH ...
OVERFETCH_CHEAP = 500  # ... when that is at most this many (a broad filter) ...
OVERFETCH_MAX = 2000  # ... else scans its kept vectors exactly if they fit, else fetches at most this many
FILTERED_VECTORS_BYTES = 96 * 2**20
# An index from before the catalog kept vectors asks Chroma for the kept ids (linear in them).
CHROMA_IDS_MAX_CHUNKS = 4000

Mode = Literal["hybrid", "dense", "lexical"]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = 60) -> dict[str, float]:
    """score(d) = sum over rankings of 1 / (k + rank(d)), ranks starting at 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


class Retriever:
    def __init__(self, index: Index, settings: Settings):
        self.index = index
        self.settings = settings
        self.filtered_vectors = FilteredVectors(FILTERED_VECTORS_BYTES)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        source: str | None = None,
        year: int | None = None,
        author: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[Hit]:
        """The k best papers, each with its passage that best matches the query.

        Dense ranks chunks (a paper counts with its best chunk), BM25 ranks whole papers; the two
        paper rankings are fused by reciprocal rank. Papers the query calls by their own name come first.
        Filters (see `rag.filters.Filters`) keep only the papers that pass them.
        """
        filters = Filters.of(source=source, author=author, year=year, since=since, until=until)
        index, catalog, n = self.index, self.index.catalog, self.settings.candidates
        lex = index.lexical if (filters or mode != "dense") else None
        table, mask = None, None
        if filters and lex is not None:
            table = index.paper_table(lex)
            mask = table.mask(filters, catalog)
            if not mask.any():
                return []

        best_chunk: dict[str, tuple[str, float]] = {}  # paper -> its best dense chunk and cosine, in rank order
        if mode in ("hybrid", "dense"):
            vector = index.embedder.encode_query(query)
            for cid, score in self._dense(vector, n, table, mask):
                best_chunk.setdefault(cid.split(":", 1)[0], (cid, score))
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "lexical") and lex is not None:
            lexical = lex.search(query, n, allowed=mask)

        dense_rank = {pid: r for r, pid in enumerate(best_chunk, start=1)}
        lexical_rank = {pid: r for r, (pid, _) in enumerate(lexical, start=1)}
        if mode == "hybrid":
            fused = reciprocal_rank_fusion([list(best_chunk), [pid for pid, _ in lexical]], self.settings.rrf_k)
        elif mode == "dense":
            fused = {pid: score for pid, (_, score) in best_chunk.items()}
        else:
            fused = dict(lexical)
        ranked = sorted(fused, key=lambda pid: -fused[pid])
        named = self._named_papers(query)
        if table is not None and mask is not None:
            named = {pid for pid in named if (i := table.position.get(pid)) is not None and mask[i]}
        ranked = (
            [pid for pid in ranked if pid in named]
            + sorted(named - set(ranked))
            + [pid for pid in ranked if pid not in named]
        )

        papers = catalog.get_papers(ranked[: k * 2])  # a few spare: a paper may have left the catalog
        picked = [pid for pid in ranked[: k * 2] if pid in papers][:k]
        passages = self._passages(query, picked, best_chunk)
        hits = []
        for pid in picked:
            if pid not in passages:
                continue  # committed vectors whose catalog rows are gone: never show them
            cid, text = passages[pid]
            paper = papers[pid]
            hits.append(
                Hit(
                    chunk_id=cid,
                    paper_id=pid,
                    title=paper.title,
                    text=text,
                    score=fused.get(pid, 0.0),
                    dense_rank=dense_rank.get(pid),
                    lexical_rank=lexical_rank.get(pid),
                    dense_score=best_chunk[pid][1] if pid in best_chunk else None,
                    named=pid in named,
                    sources=paper.sources,
                    year=paper.year,
                )
            )
        return hits

    def filter_problem(self, filters: Filters) -> str | None:
        """Why `filters` keep no paper of the index (None: they keep some, or there are none)."""
        if not filters:
            return None
        index = self.index
        table = index.paper_table(index.lexical)
        if table.mask(filters, index.catalog).any():
            return None
        return table.why_empty(filters, index.catalog)

    def _dense(
        self, vector: np.ndarray, n: int, table: PaperTable | None, mask: np.ndarray | None
    ) -> list[tuple[str, float]]:
        """The n nearest chunks as (chunk id, cosine), only of the papers `mask` keeps.

        Chroma's own filters cost time linear in the chunks they keep (measured in BENCHMARKS "Scale"),
        so a filter is answered in one of two ways: for a broad one, Chroma's unfiltered top n / share
        is fetched and filtered (a filter keeping 10% of the chunks fetches 15n); a narrower one whose
        vectors fit in `FILTERED_VECTORS_BYTES` is scored exactly from the vectors the catalog keeps,
        held in memory for the next searches under the same filter.
        """
        vectors = self.index.vectors
        if table is None or mask is None:
            return vectors.query(vector, n)
        catalog = self.index.catalog
        expected = max(int(mask.sum()) * table.chunks / max(len(table), 1), 1.0)  # chunks the filter keeps, about
        fetch = max(n, math.ceil(n * table.chunks / expected * OVERFETCH))
        held = catalog.vectors_kept
        if held and fetch > OVERFETCH_CHEAP and expected * 4 * len(vector) <= FILTERED_VECTORS_BYTES:
            kept = self.filtered_vectors.get(table, mask, lambda: self._kept_vectors(table, mask))
            if kept is not None:
                return kept.nearest(vector, n)
            held = False  # some rows lost their vectors (never written so by this version)
        if not held and expected <= CHROMA_IDS_MAX_CHUNKS:  # an index from before the catalog kept vectors
            ids = catalog.chunk_ids_of(table.papers(mask))
            return vectors.query(vector, min(n, len(ids)), ids=ids) if ids else []
        fetch = min(fetch, OVERFETCH_MAX)
        out = []
        for cid, score in vectors.query(vector, fetch):
            i = table.position.get(cid.split(":", 1)[0])
            if i is not None and mask[i]:
                out.append((cid, score))
        return out[:n]

    def _kept_vectors(self, table: PaperTable, mask: np.ndarray) -> KeptVectors | None:
        kept = self.index.catalog.chunk_vectors(table.papers(mask))
        return None if kept is None else KeptVectors.of(*kept)

    def _passages(
        self, query: str, paper_ids: list[str], best_chunk: dict[str, tuple[str, float]]
    ) -> dict[str, tuple[str, str]]:
        """paper id -> (chunk id, text) of its passage: its best dense chunk, else the chunk sharing most query words."""
        catalog = self.index.catalog
        wanted = [best_chunk[pid][0] for pid in paper_ids if pid in best_chunk]
        others = [pid for pid in paper_ids if pid not in best_chunk]
        candidates = catalog.chunk_ids_of(others)
        rows = catalog.get_chunks(wanted + candidates)
        out = {
            pid: (cid, rows[cid][2]) for pid in paper_ids if pid in best_chunk and (cid := best_chunk[pid][0]) in rows
        }
        words = content_words(query)
        ordered = [cid for cid in sorted(candidates, key=lambda c: int(c.rsplit(":", 1)[1])) if cid in rows]
        overlaps = (
            [len(words & set(tokens)) for tokens in tokenize([rows[cid][2] for cid in ordered])] if ordered else []
        )
        best: dict[str, int] = {}  # paper -> the overlap of its passage so far
        for cid, overlap in zip(ordered, overlaps):
            pid, _, text = rows[cid]
            if pid not in out or overlap > best.get(pid, -1):
                out[pid] = (cid, text)
                best[pid] = overlap
        return out

    def _named_papers(self, query: str) -> set[str]:
        """Papers the query calls by their own name ("What is SimMIM?"): a name-like run of its words that
        is the name a title leads with or an abstract introduces, and that few papers go by."""
        spans = name_spans(query)
        if not spans:
            return set()
        found = self.index.catalog.papers_named([name_key(s) for s in spans])
        return {pid for pids in found.values() if len(pids) <= MAX_NAMESAKES for pid in pids}

    def prefer(self, hits: list[Hit], paper_id: str, question: str) -> list[Hit]:
        """`hits` with the conversation's paper first, unless the question calls another paper by its name."""
        if self._named_papers(question) - {paper_id}:
            return hits  # "How does MobileSAM compare?": the question moved on to another paper
        others = [h for h in hits if h.paper_id != paper_id]
        topic = next((h for h in hits if h.paper_id == paper_id), None)
        if topic is None:
            catalog = self.index.catalog
            paper = catalog.get_papers([paper_id]).get(paper_id)
            rows = catalog.get_chunks(catalog.chunk_ids_of([paper_id])[:1])
            if paper is None or not rows:
                return hits  # the paper left the index since it was cited
            chunk_id, (_, title, text) = next(iter(rows.items()))
            topic = Hit(
                chunk_id=chunk_id,
                paper_id=paper_id,
                title=title,
                text=text,
                score=0.0,
                sources=paper.sources,
                year=paper.year,
            )
        return [topic, *others][: max(len(hits), 1)]
