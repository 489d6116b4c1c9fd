"""From a question and retrieved hits to a verified, cited answer (the model is one replaceable part).

Steps: gate on relevance (no model call when nothing relevant was found) -> keep the sentences of
each top paper's abstract that bear on the question (short prefill is the largest latency win on
a CPU) -> prompt from `prompts/` -> stream -> check each sentence against its cited passage.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator, Sequence

from .catalog import Catalog
from .citations import CitationChecker, content_words, split_answer, strip_keys
from .llm import Generator, Message
from .prompts import CANNOT_ANSWER, Template
from .safety import passage_sentences
from .settings import Settings
from .types import Answer, Hit, Timings

STOP = ["\n\n\n", "Question:", "Passages:", "<|im_end|>", "<|endoftext|>"]

def relevant(question: str, hits: Sequence[Hit], settings: Settings) -> bool:
    """Is anything retrieved close enough to the question to be worth asking the model?"""
    if not hits:
        return False
    best = max((h.dense_score or 0.0) for h in hits)
    return best >= settings.min_relevance


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


def build_passages(question: str, hits: Sequence[Hit], catalog: Catalog, generator: Generator, settings: Settings) -> list[Hit]:
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
        ((rank, i) for rank, a in enumerate(abstracts) if a.chosen for i in range(len(a.sentences)) if i not in a.chosen),
        key=lambda pair: (-abstracts[pair[0]].scores[pair[1]], pair),
    )
    for rank, index in rest:
        take(abstracts[rank], index, abstracts[rank].costs[index])
    return [
        dataclasses.replace(a.hit, text=" ".join(a.sentences[i] for i in sorted(a.chosen))) for a in abstracts if a.chosen
    ]


def render_messages(prompts: dict[str, Template], question: str, passages: Sequence[Hit]) -> list[Message]:
    block = "\n\n".join(
        prompts["passage"].render(key=i, title=p.title, text=p.text) for i, p in enumerate(passages, start=1)
    )
    return [
        # The system prompt is identical for every question, so llama.cpp reuses its KV cache.
        {"role": "system", "content": prompts["system"].render()},
        {"role": "user", "content": prompts["answer"].render(passages=block, question=question)},
    ]


def _says_cannot_answer(text: str) -> bool:
    lowered = " ".join(text.lower().split())
    return "corpus does not answer" in lowered or "passages do not contain" in lowered or "not mentioned in the passages" in lowered


class AnswerStream:
    """Iterate to get the verified answer text in pieces; `.answer` is set when the stream ends.

    `cancel()` (safe from another thread) stops the model at its next token; the stream then ends
    with `.answer` left None and `.cancelled` True.
    """

    def __init__(self, pieces: Iterator[str]):
        self._pieces = pieces
        self.answer: Answer | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            if self.cancelled:
                self.answer = None
                return
            yield piece


def refusal(question: str, standalone: str, timings: Timings, notices: list[str], model: str | None, reason: str) -> Answer:
    return Answer(
        question=question, text=CANNOT_ANSWER, refused=True, standalone_question=standalone, timings=timings,
        notices=notices, model=model, refusal_reason=reason,
    )


def generate_answer(
    stream: AnswerStream,
    *,
    question: str,
    standalone: str,
    passages: Sequence[Hit],
    generator: Generator,
    prompts: dict[str, Template],
    settings: Settings,
    timings: Timings,
    started: float,
    notices: list[str],
) -> Iterator[str]:
    """Stream the model's answer, yielding each sentence once its citation checks out."""
    messages = render_messages(prompts, standalone, passages)
    prompt_tokens = sum(generator.count_tokens(m["content"]) for m in messages)
    checker = CitationChecker(passages, settings.min_support)
    raw, completion_tokens, shown = "", 0, 0
    done = 0  # sentences of `raw` already checked

    def checked(sentences: Sequence[str]) -> Iterator[str]:
        nonlocal shown
        for sentence in sentences:
            if _says_cannot_answer(sentence):
                continue
            out = checker.add(sentence)
            if out:
                yield ("" if shown == 0 else " ") + out
                shown += 1

    for piece in generator.stream(messages, max_tokens=settings.max_answer_tokens, stop=STOP,
                                  temperature=settings.temperature):
        if stream.cancelled:
            return  # leaving the loop closes the model's generator: generation stops here
        if timings.first_token_s is None:
            timings.first_token_s = time.perf_counter() - started
        completion_tokens += 1
        raw += piece
        sentences = split_answer(raw)
        # All but the last sentence are complete (the last may still grow or get its [n]).
        yield from checked(sentences[done : len(sentences) - 1])
        done = max(done, len(sentences) - 1)
    tail = split_answer(raw)[done:]
    if completion_tokens >= settings.max_answer_tokens and tail and not strip_keys(tail[-1]).rstrip("\"')").endswith(
            (".", "!", "?")):
        checker.dropped.append(tail.pop())  # cut off by the token limit mid-sentence: not a finished claim
    yield from checked(tail)
    timings.total_s = time.perf_counter() - started
    verified = checker.result()
    if not verified.citations:
        reason = "the model said the passages do not answer it" if _says_cannot_answer(raw) else (
            "no sentence of the model's answer was supported by a retrieved passage")
        answer = refusal(question, standalone, timings, notices, generator.name, reason)
        answer.raw_text = raw
        yield CANNOT_ANSWER
    else:
        answer = Answer(
            question=question, text=verified.text, citations=verified.citations, refused=False,
            standalone_question=standalone, raw_text=raw, model=generator.name, timings=timings, notices=notices,
            dropped_sentences=verified.dropped,
        )
    answer.prompt_tokens, answer.completion_tokens = prompt_tokens, completion_tokens
    stream.answer = answer


def condense(question: str, history: Sequence[Answer], generator: Generator, prompts: dict[str, Template]) -> str:
    """Rewrite a follow-up into a standalone question; fall back to prefixing the last question."""
    earlier = [a.standalone_question or a.question for a in history][-3:]
    fallback = f"{earlier[-1]} {question}"
    messages = [{"role": "user", "content": prompts["condense"].render(
        history="\n".join(f"- {q}" for q in earlier), question=question)}]
    try:
        text = "".join(generator.stream(messages, max_tokens=60, stop=["\n"], temperature=0.0)).strip()
    except Exception:
        return fallback
    text = text.strip().strip('"').strip()
    if not text or len(text) > 400 or not content_words(text):
        return fallback
    # A rewrite must keep the follow-up's own content words, or it answered instead of rewriting.
    if content_words(question) and not content_words(question) & content_words(text):
        return fallback
    return text
