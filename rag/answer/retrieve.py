"""Hybrid retrieval: dense and BM25 rankings fused by reciprocal rank, one hit per paper.

The dense side is an exact scan of the vectors the catalog keeps while they fit in memory
(`Settings.retrieval.exact_search_mb`), Chroma's HNSW graph beyond that."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rag.safety import shown_authors
from rag.settings import Settings
from rag.store.filters import FilteredVectors, Filters, KeptVectors, PaperTable
from rag.store.index import Index
from rag.store.paper_vectors import PaperScores
from rag.text import content_words, name_key, name_spans, tokenize
from rag.types import MAX_BYLINE_AUTHORS, Hit

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
# An index whose vectors fit in `Settings.retrieval.exact_search_mb` of float32 (by default 96 MB: 64k chunks of 384
# dimensions) is searched exactly, from the vectors the catalog keeps, not through Chroma's HNSW graph:
# HNSW's greedy search can miss a paper far from the rest of the corpus (one on masked images among
# thousands on other topics was not in Chroma's top 200 at ef_search=100; a larger ef_search did not
# bring it back: BENCHMARKS "Dense recall"). A scan of 64k chunks costs ~2-8 ms; the vectors are read
# once per catalog state (~7 us a chunk).

Mode = Literal["hybrid", "dense", "lexical"]
# Neighbours a sampled chunk's own vector must be among in the recall check (`Retriever.recall_check`).
RECALL_K = 10


@dataclass(frozen=True)
class RecallCheck:
    """How many sampled chunks the vector store finds by their own vector among its RECALL_K nearest."""

    sampled: int
    found: int
    missed: list[str]  # chunk ids it did not find
    exact: bool  # the index is small enough that searches scan it exactly (the store's graph is not used)
    exact_mb: float = 0.0  # the memory an exact search of the whole index needs (RAG_EXACT_SEARCH_MB)

    @property
    def recall(self) -> float:
        return self.found / self.sampled if self.sampled else 1.0


def standardised_fusion(signals: Sequence[dict[str, float]], depth: int) -> dict[str, float]:
    """score(d) = sum over signals of (s(d) - mean) / spread, mean and spread over that signal's `depth`
    best scores; a paper a signal did not list takes that signal's lowest listed score.

    Unlike reciprocal ranks, how far a paper stands out counts: one that a signal puts several spreads
    above its other candidates can outweigh the milder preferences of the other two. On paraphrased
    questions the paper model often does, while BM25 and the chunk embedder, both led by shared words,
    spread their scores over papers that share some (BENCHMARKS "Paraphrase-robust retrieval").
    """
    papers = {pid for signal in signals for pid in signal}
    fused = dict.fromkeys(papers, 0.0)
    for signal in signals:
        if not signal:
            continue
        top = np.sort(np.fromiter(signal.values(), dtype=np.float64, count=len(signal)))[::-1][:depth]
        mean = float(top.mean())
        spread = max(float(top.std()), 1e-6 + 0.01 * abs(mean))  # a flat or one-paper list weighs ~nothing
        floor = float(top[-1])
        for pid in papers:
            fused[pid] += (signal.get(pid, floor) - mean) / spread
    return fused


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
        paper_model = index.paper_embedder.name if index.paper_embedder is not None else None
        self.papers = PaperScores(lambda: self.index.catalog, paper_model) if paper_model else None
        self._exact_lock = threading.Lock()
        self._exact: tuple[int, KeptVectors | None] | None = None  # (catalog generation, every chunk's vector)
        self._exact_positions: tuple[KeptVectors, PaperTable, np.ndarray] | None = None  # its chunks' papers

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The k best papers, each with its passage that best matches the query.

        Dense ranks chunks (a paper counts with its best chunk), BM25 ranks whole papers; the two
        paper rankings are fused by reciprocal rank. Papers the query calls by their own name come first.
        `filters` keep only the papers that pass them.
        """
        filters = filters or Filters()
        index, catalog, n = self.index, self.index.catalog, self.settings.retrieval.candidates
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
        bm25 = None
        if mode in ("hybrid", "lexical") and lex is not None:
            bm25 = lex.score_all(query, allowed=mask)
            lexical = [] if bm25 is None else lex.top(bm25, n)
        others = set(best_chunk) | {pid for pid, _ in lexical}
        by_paper = self._paper_side(query, n, table, mask, others) if mode == "hybrid" else {}

        dense_rank = {pid: r for r, pid in enumerate(best_chunk, start=1)}
        lexical_rank = {pid: r for r, (pid, _) in enumerate(lexical, start=1)}
        paper_ranked = sorted(by_paper, key=lambda pid: -by_paper[pid])
        paper_rank = {pid: r for r, pid in enumerate(paper_ranked, start=1)}
        if mode == "hybrid" and by_paper:
            # every candidate with its own score in each signal, not only the ones a signal listed
            candidates = set(by_paper) | set(best_chunk) | {pid for pid, _ in lexical}
            dense_scores = {pid: score for pid, (_, score) in best_chunk.items()}
            dense_scores.update(self._best_chunk_scores(vector, candidates - set(best_chunk)))
            lexical_scores = dict(lexical)
            if bm25 is not None and lex is not None:
                at = lex.position
                lexical_scores.update({pid: float(bm25[at[pid]]) for pid in candidates if pid in at})
            fused = standardised_fusion([dense_scores, lexical_scores, by_paper], n)
        elif mode == "hybrid":
            fused = reciprocal_rank_fusion(
                [list(best_chunk), [pid for pid, _ in lexical]], self.settings.retrieval.rrf_k
            )
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
                    paper_rank=paper_rank.get(pid),
                    paper_score=by_paper.get(pid),
                    named=pid in named,
                    sources=paper.sources,
                    year=paper.year,
                    authors=shown_authors(paper.authors, MAX_BYLINE_AUTHORS),
                )
            )
        return hits

    def _best_chunk_scores(self, vector: np.ndarray, paper_ids: set[str]) -> dict[str, float]:
        """The cosine of each paper's best chunk to the query (papers the dense search did not list)."""
        if not paper_ids:
            return {}
        kept = self.index.catalog.chunk_vectors(sorted(paper_ids))
        if kept is None or not kept[0]:
            return {}
        chunks = KeptVectors.of(*kept)
        query = vector.astype(np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
        out: dict[str, float] = {}
        for cid, score in zip(chunks.ids, (chunks.unit @ query).tolist()):
            pid = cid.split(":", 1)[0]
            out[pid] = max(out.get(pid, -1.0), score)
        return out

    def _paper_side(
        self, query: str, n: int, table: PaperTable | None, mask: np.ndarray | None, others: set[str]
    ) -> dict[str, float]:
        """The paper model's cosine of the question to its n nearest papers (of those `mask` keeps) and to
        the `others` the other signals found; empty without a complete paper side in this index."""
        embedder = self.index.paper_embedder
        if self.papers is None or embedder is None:
            return {}
        held = self.papers.held()
        if held is None:
            return {}  # no paper vectors of this model in the index (yet): the model is not even loaded
        ids = held[0]
        cosines = self.papers.scores(embedder.encode_query(query), held)
        if table is not None and mask is not None:
            at = table.position.get
            kept = np.fromiter(((i := at(pid)) is not None and mask[i] for pid in ids), dtype=bool, count=len(ids))
            cosines = np.where(kept, cosines, -np.inf)
        top = np.argpartition(-cosines, n - 1)[:n] if n < len(ids) else np.arange(len(ids))
        out = {ids[i]: float(cosines[i]) for i in top if np.isfinite(cosines[i])}
        row = self.papers.row
        out.update({pid: float(cosines[row[pid]]) for pid in others if pid in row and pid not in out})
        return out

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

        A small index is scanned exactly (`exact_vectors`), with or without a filter. In a larger one,
        Chroma's own filters cost time linear in the chunks they keep (measured in BENCHMARKS "Scale"),
        so a filter is answered in one of two ways: for a broad one, Chroma's unfiltered top n / share
        is fetched and filtered (a filter keeping 10% of the chunks fetches 15n); a narrower one whose
        vectors fit in `FILTERED_VECTORS_BYTES` is scored exactly from the vectors the catalog keeps,
        held in memory for the next searches under the same filter.
        """
        vectors = self.index.vectors
        if (everything := self.exact_vectors()) is not None:
            rows = None if table is None or mask is None else self._rows_kept(everything, table, mask)
            return everything.nearest(vector, n, rows)
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

    def exact_vectors(self) -> KeptVectors | None:
        """Every chunk's vector, when the index is small enough to be searched exactly (see
        `Settings.retrieval.exact_search_mb`), read once per catalog generation; None for a larger index (Chroma searches it)."""
        catalog = self.index.catalog
        generation = catalog.generation
        with self._exact_lock:
            if self._exact is None or self._exact[0] != generation:
                dimension = int(catalog.get_meta("dimension") or 0)
                limit = self.settings.retrieval.exact_search_mb * 2**20
                fits = catalog.vectors_kept and catalog.chunk_count() * dimension * 4 <= limit
                kept = catalog.all_chunk_vectors() if fits else None
                self._exact = (generation, None if kept is None else KeptVectors.of(*kept))
            return self._exact[1]

    def recall_check(self, sample: int = 200, seed: int = 0) -> RecallCheck:
        """Query the vector store (Chroma's graph, whatever the size) with the kept vectors of `sample`
        random chunks: a healthy graph returns each chunk among its own nearest neighbours."""
        ids, vectors = self.index.catalog.sample_chunk_vectors(sample, seed)
        missed: list[str] = []
        for start in range(0, len(ids), 100):
            found = self.index.vectors.query_many(vectors[start : start + 100], RECALL_K)
            missed += [cid for cid, near in zip(ids[start : start + 100], found) if cid not in near]
        exact = self.exact_vectors() is not None
        catalog = self.index.catalog
        needed = math.ceil(catalog.chunk_count() * int(catalog.get_meta("dimension") or 0) * 4 / 2**20)
        return RecallCheck(len(ids), len(ids) - len(missed), missed, exact, needed)

    def _rows_kept(self, everything: KeptVectors, table: PaperTable, mask: np.ndarray) -> np.ndarray:
        """Boolean mask over `everything`'s chunks: those of the papers `mask` keeps."""
        with self._exact_lock:
            cached = self._exact_positions
            if cached is None or cached[0] is not everything or cached[1] is not table:
                at = table.position.get
                positions = np.fromiter(
                    (at(cid.split(":", 1)[0], -1) for cid in everything.ids), dtype=np.int64, count=len(everything.ids)
                )
                cached = self._exact_positions = (everything, table, positions)
        positions = cached[2]
        return (positions >= 0) & mask[np.maximum(positions, 0)]

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
                authors=shown_authors(paper.authors, MAX_BYLINE_AUTHORS),
            )
        return [topic, *others][: max(len(hits), 1)]
