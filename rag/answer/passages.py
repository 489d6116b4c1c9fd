"""What the model is shown: the relevance gate, and the sentences of the top papers that bear on the question.

Short, focused passages are the largest latency win on a CPU (prefill dominates the first token) and
keep small models on the facts; the gate spares a model call when nothing relevant was retrieved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from rag.backends.llm import Generator
from rag.protocols import Embedder
from rag.safety import passage_sentences
from rag.settings import Settings
from rag.store.catalog import Catalog
from rag.text import content_words, identity_names
from rag.types import Hit


def relevant(question: str, hits: Sequence[Hit], settings: Settings) -> bool:
    """Is anything retrieved close enough to the question to be worth asking the model?

    Two signals: the question calls a retrieved paper by its own name ("What is SimMIM?": MiniLM's
    cosine for a bare name can be low), or the best dense cosine clears `min_relevance`.
    """
    if not hits:
        return False
    if any(h.named for h in hits):
        return True
    return max((h.dense_score or 0.0) for h in hits) >= settings.retrieval.min_relevance


def sentence_scores(question: str, sentences: Sequence[str]) -> list[float]:
    """How much each sentence speaks to the question by its words: shared content words, damped by its length.

    (Tried and not kept, on the dev set: weighting words by their rarity among the abstract's sentences
    lost 3 answers.)
    """
    query = content_words(question)
    scores = []
    for sentence in sentences:
        words = content_words(sentence)
        scores.append(len(query & words) / math.sqrt(len(words) + 1))
    return scores


def meaning_and_words(question: str, sentences: Sequence[str], embedder: Embedder | None) -> list[float]:
    """Words and meaning together: the shared-words score (scaled by its best) plus the embedder's cosine
    of the sentence to the question (scaled from its worst to its best), over the candidate sentences.

    Neither alone carried over from one question set to another (issue 25: word overlap found the
    answer sentence for 0.38 of val's paraphrases and 0.54 of the held-out set's, cosine 0.44 and 0.40).
    """
    words = sentence_scores(question, sentences)
    best = max(words, default=0.0)
    scaled = [w / best for w in words] if best > 0 else [0.0] * len(words)
    if embedder is None or not sentences:
        return scaled
    vectors = embedder.encode(list(sentences))
    query = embedder.encode_query(question)
    cosines = (vectors @ query) / np.maximum(np.linalg.norm(vectors, axis=1) * np.linalg.norm(query), 1e-12)
    low, high = float(cosines.min()), float(cosines.max())
    meaning = (cosines - low) / (high - low) if high > low else np.zeros(len(sentences))
    return [w + float(m) for w, m in zip(scaled, meaning)]


@dataclasses.dataclass
class _Abstract:
    """One top paper's candidate sentences with their scores and token costs."""

    hit: Hit
    sentences: list[str]
    scores: list[float]
    costs: list[int]
    chosen: list[int] = dataclasses.field(default_factory=list)


def build_passages(
    question: str,
    hits: Sequence[Hit],
    catalog: Catalog,
    generator: Generator,
    settings: Settings,
    embedder: Embedder | None = None,
) -> list[Hit]:
    """The passages the model sees: the sentences of the top papers that bear on the question, within a token budget.

    Prefill dominates the time to first token on a CPU, so the budget is shared across papers: the
    top paper's whole abstract when it costs at most `context_whole_top_tokens`, then the best
    sentence of each paper (in rank order), then the next best sentences of any of them, at most
    `context_sentences` a paper, each paper's sentences kept in their own order. Sentences are
    scored by words and, with an `embedder`, by meaning (`meaning_and_words`).
    """
    top = list(hits[: settings.answer.context_passages])
    papers = catalog.get_papers(h.paper_id for h in top)
    candidates = []
    for hit in top:
        paper = papers.get(hit.paper_id)
        sentences = passage_sentences(paper.abstract if paper else hit.text)
        if sentences:
            candidates.append((hit, sentences))
    pooled = meaning_and_words(question, [s for _, sentences in candidates for s in sentences], embedder)
    abstracts = []
    for hit, sentences in candidates:
        scores, pooled = pooled[: len(sentences)], pooled[len(sentences) :]
        costs = [generator.count_tokens(sentence + " ") for sentence in sentences]
        abstracts.append(_Abstract(hit, sentences, scores, costs))
    used = 0
    if abstracts:
        first = abstracts[0]
        whole = generator.count_tokens(f"[0] {first.hit.heading}\n") + sum(first.costs)
        if whole <= min(settings.answer.context_whole_top_tokens, settings.answer.context_tokens):
            first.chosen = list(range(len(first.sentences)))
            used = whole

    def take(abstract: _Abstract, index: int, cost: int) -> None:
        nonlocal used
        full = len(abstract.chosen) >= settings.answer.context_sentences
        # the top paper's best sentence is always shown
        over = used + cost > settings.answer.context_tokens and used > 0
        if not (full or over):
            abstract.chosen.append(index)
            used += cost

    for a in abstracts:
        if a.chosen:
            continue  # the top paper, shown whole
        best = max(range(len(a.sentences)), key=lambda i: (a.scores[i], -i))
        take(a, best, generator.count_tokens(f"[0] {a.hit.heading}\n") + a.costs[best])
    # The rest by score; ties go to the higher-ranked paper, then the earlier sentence.
    rest = sorted(
        (
            (rank, i)
            for rank, a in enumerate(abstracts)
            if a.chosen and len(a.chosen) < len(a.sentences)
            for i in range(len(a.sentences))
            if i not in a.chosen
        ),
        key=lambda pair: (-abstracts[pair[0]].scores[pair[1]], pair),
    )
    for rank, index in rest:
        take(abstracts[rank], index, abstracts[rank].costs[index])
    return [
        dataclasses.replace(
            a.hit,
            text=" ".join(a.sentences[i] for i in sorted(a.chosen)),
            # The paper's own names count as mentioned by its passage even where the chosen sentences omit them.
            aliases=sorted(identity_names(a.hit.title, papers[a.hit.paper_id].abstract))
            if a.hit.paper_id in papers
            else [],
        )
        for a in abstracts
        if a.chosen
    ]
