"""What the model is shown: the relevance gate, and the sentences of the top papers that bear on the question.

Short, focused passages are the largest latency win on a CPU (prefill dominates the first token) and
keep small models on the facts; the gate spares a model call when nothing relevant was retrieved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from .catalog import Catalog
from .llm import Generator
from .safety import passage_sentences
from .settings import Settings
from .text import content_words, identity_names
from .types import Hit


def relevant(question: str, hits: Sequence[Hit], settings: Settings) -> bool:
    """Is anything retrieved close enough to the question to be worth asking the model?

    Two signals: the question calls a retrieved paper by its own name ("What is SimMIM?": MiniLM's
    cosine for a bare name can be low), or the best dense cosine clears `min_relevance`.
    """
    if not hits:
        return False
    if any(h.named for h in hits):
        return True
    return max((h.dense_score or 0.0) for h in hits) >= settings.min_relevance


def sentence_scores(question: str, sentences: Sequence[str]) -> list[float]:
    """How much each sentence speaks to the question: shared content words, damped by its length.

    (Tried and not kept, on the dev set: embedding similarity found the answer sentence no more
    often; weighting words by their rarity among the abstract's sentences lost 3 answers.)
    """
    query = content_words(question)
    scores = []
    for sentence in sentences:
        words = content_words(sentence)
        scores.append(len(query & words) / math.sqrt(len(words) + 1))
    return scores


@dataclasses.dataclass
class _Abstract:
    """One top paper's candidate sentences with their scores and token costs."""

    hit: Hit
    sentences: list[str]
    scores: list[float]
    costs: list[int]
    chosen: list[int] = dataclasses.field(default_factory=list)


def build_passages(
    question: str, hits: Sequence[Hit], catalog: Catalog, generator: Generator, settings: Settings
) -> list[Hit]:
    """The passages the model sees: the sentences of the top papers that bear on the question, within a token budget.

    Prefill dominates the time to first token on a CPU, so the budget is shared across papers:
    first the best sentence of each paper (in rank order), then the next best sentences of any of
    them, at most `context_sentences` a paper, each paper's sentences kept in their own order.
    """
    top = list(hits[: settings.context_passages])
    papers = catalog.get_papers(h.paper_id for h in top)
    abstracts = []
    for hit in top:
        paper = papers.get(hit.paper_id)
        sentences = passage_sentences(paper.abstract if paper else hit.text)
        if sentences:
            costs = [generator.count_tokens(sentence + " ") for sentence in sentences]
            abstracts.append(_Abstract(hit, sentences, sentence_scores(question, sentences), costs))
    used = 0

    def take(abstract: _Abstract, index: int, cost: int) -> None:
        nonlocal used
        full = len(abstract.chosen) >= settings.context_sentences
        over = used + cost > settings.context_tokens and used > 0  # the top paper's best sentence is always shown
        if not (full or over):
            abstract.chosen.append(index)
            used += cost

    for a in abstracts:
        best = max(range(len(a.sentences)), key=lambda i: (a.scores[i], -i))
        take(a, best, generator.count_tokens(f"[0] {a.hit.title}\n") + a.costs[best])
    # The rest by score; ties go to the higher-ranked paper, then the earlier sentence.
    rest = sorted(
        (
            (rank, i)
            for rank, a in enumerate(abstracts)
            if a.chosen
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
