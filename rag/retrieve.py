"""Hybrid retrieval: dense (Chroma) and BM25 rankings fused by reciprocal rank, one hit per paper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .index import Index
from .settings import Settings
from .types import Hit

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
                dense_score=dense_score.get(cid),
                sources=paper.sources if paper else [], year=paper.year if paper else None,
            ))
        return hits
