"""Hybrid retrieval: dense (Chroma) and BM25 rankings fused by reciprocal rank, one hit per paper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .index import Index
from .settings import Settings
from .text import name_key, name_spans
from .types import Hit

# A name more papers than this go by ("Transformer") names no paper in particular.
MAX_NAMESAKES = 3

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

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        source: str | None = None,
        year: int | None = None,
        per_paper: int = 1,
    ) -> list[Hit]:
        index, n = self.index, self.settings.candidates
        allowed = index.catalog.chunk_ids_matching(source, year) if (source or year) else None
        if allowed is not None and not allowed:
            return []

        dense: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            vector = index.embedder.encode_query(query)
            # Chroma cannot filter by our chunk-id set cheaply: over-fetch, then filter.
            dense = index.vectors.query(vector, n * 5 if allowed is not None else n)
            if allowed is not None:
                dense = [(cid, s) for cid, s in dense if cid in allowed][:n]
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "lexical"):
            lex = index.lexical
            mask = lex.mask_for(allowed) if allowed is not None else None
            lexical = lex.search(query, n, allowed=mask)

        dense_rank = {cid: r for r, (cid, _) in enumerate(dense, start=1)}
        dense_score = dict(dense)
        lexical_rank = {cid: r for r, (cid, _) in enumerate(lexical, start=1)}
        if mode == "hybrid":
            fused = reciprocal_rank_fusion([[c for c, _ in dense], [c for c, _ in lexical]], self.settings.rrf_k)
        else:
            fused = {cid: score for cid, score in (dense or lexical)}
        ranked = sorted(fused, key=lambda cid: -fused[cid])
        named = self._named_papers(query)
        if named:
            ranked = self._named_first(ranked, named, allowed)

        rows = index.catalog.get_chunks(ranked)
        taken: dict[str, int] = {}
        picked: list[str] = []
        for cid in ranked:
            if cid not in rows:
                continue  # committed vectors whose catalog row is gone: never show them
            pid = rows[cid][0]
            if taken.get(pid, 0) >= per_paper:
                continue
            taken[pid] = taken.get(pid, 0) + 1
            picked.append(cid)
            if len(picked) == k:
                break
        papers = index.catalog.get_papers(rows[cid][0] for cid in picked)
        hits = []
        for cid in picked:
            pid, title, text = rows[cid]
            paper = papers.get(pid)
            hits.append(Hit(
                chunk_id=cid, paper_id=pid, title=title, text=text, score=fused[cid],
                dense_rank=dense_rank.get(cid), lexical_rank=lexical_rank.get(cid),
                dense_score=dense_score.get(cid), named=pid in named,
                sources=paper.sources if paper else [], year=paper.year if paper else None,
            ))
        return hits

    def _named_papers(self, query: str) -> set[str]:
        """Papers the query calls by their own name ("What is SimMIM?"): a name-like run of its words that
        is the name a title leads with or an abstract introduces, and that few papers go by."""
        spans = name_spans(query)
        if not spans:
            return set()
        found = self.index.catalog.papers_named([name_key(s) for s in spans])
        return {pid for pids in found.values() if len(pids) <= MAX_NAMESAKES for pid in pids}

    def _named_first(self, ranked: list[str], named: set[str], allowed: set[str] | None) -> list[str]:
        """The ranking with each named paper's best chunk (or its first one, if neither retriever found it) first."""
        catalog = self.index.catalog
        first: dict[str, str] = {}
        for cid in ranked:
            pid = cid.split(":", 1)[0]
            if pid in named and pid not in first:
                first[pid] = cid
        for pid in sorted(named - set(first)):
            chunk_ids = catalog.chunk_ids_of([pid])
            candidates = [c for c in chunk_ids if allowed is None or c in allowed]
            if candidates:
                first[pid] = min(candidates, key=lambda c: int(c.rsplit(":", 1)[1]))
        pinned = list(first.values())
        return pinned + [cid for cid in ranked if cid not in set(pinned)]

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
            topic = Hit(chunk_id=chunk_id, paper_id=paper_id, title=title, text=text, score=0.0,
                        sources=paper.sources, year=paper.year)
        return [topic, *others][: max(len(hits), 1)]
