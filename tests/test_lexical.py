"""The BM25 side on its own: ranking, ties, masks."""

from __future__ import annotations

from rag.store.lexical import LexicalIndex

TEXTS = [
    "graph neural networks forecast traffic on road sensors",
    "protein structures predicted from amino acid sequences",
    "traffic forecasting with graph networks",
    "traffic forecasting with graph networks",  # a duplicate: the same score as the one before
    "rain nowcasting from radar echoes",
]


def _index() -> LexicalIndex:
    return LexicalIndex.build([f"c{i}" for i in range(len(TEXTS))], TEXTS, generation=1)


def test_best_matches_first_ties_in_index_order_and_no_zero_scores():
    hits = _index().search("traffic forecasting graph", k=10)
    ids = [cid for cid, _ in hits]
    assert ids[:2] == ["c2", "c3"] and ids[2] == "c0"
    assert "c1" not in ids and "c4" not in ids  # nothing in common with the query
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)


def test_k_and_mask_limit_the_results():
    index = _index()
    assert len(index.search("traffic forecasting graph", k=1)) == 1
    only = index.mask_for({"c0", "c4"})
    assert [cid for cid, _ in index.search("traffic forecasting graph", k=10, allowed=only)] == ["c0"]
    assert index.search("unrelated words entirely", k=10) == []
