"""From a question and its passages to a verified, cited answer: generate, check each sentence, refuse.

The model is one replaceable part: each sentence it writes is shown only once its citation checks
out (rag/answer/citations.py); when nothing survives, the answer is the refusal, with the draft and the
reasons kept on the `Answer` for whoever asks why.

An answer cannot be empty of content while retrieval is confident: when every sentence of the model
is dropped (a small model often restates a paraphrased question and puts the key where its answer
should be), the answer quotes the passage sentence closest to the question, cited and marked as a
quotation (`Answer.quoted`), instead of refusing; see `best_quote` for when it may.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Pipeline
from dataclasses import dataclass, field

from rag.answer.citations import CitationChecker, Evidence, split_answer, strip_keys
from rag.answer.prompts import CANNOT_ANSWER, Template
from rag.backends.llm import Generator, Message
from rag.protocols import Embedder
from rag.safety import passage_sentences
from rag.settings import Settings
from rag.text import asks_for_number, asks_who, content_words, mentions, names, numbers, numbers_stated
from rag.types import Answer, AnswerEvent, Citation, Dropped, Hit, Timings

STOP = ["\n\n\n", "Question:", "Passages:", "<|im_end|>", "<|endoftext|>"]


@dataclass
class AnswerRequest:
    """One question on its way to an answer: what was asked, what retrieval saw, and the clock."""

    question: str
    standalone: str
    started: float = field(default_factory=time.perf_counter)
    timings: Timings = field(default_factory=Timings)
    notices: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def refusal(self, reason: str, model: str | None = None, raw: str = "", dropped: Sequence[Dropped] = ()) -> Answer:
        self.timings.total_s = time.perf_counter() - self.started
        return Answer(
            question=self.question,
            text=CANNOT_ANSWER,
            refused=True,
            standalone_question=self.standalone,
            timings=self.timings,
            notices=self.notices,
            model=model,
            refusal_reason=reason,
            raw_text=raw,
            dropped=list(dropped),
        )


AnswerPipeline = Pipeline[AnswerEvent, None, Answer | None]


class AnswerStream:
    """Iterate to get the verified answer text in pieces; `.answer` is set when the stream ends.
    `events()` gives every step instead (raw tokens, verified and dropped sentences, then "done").

    `cancel()` (safe from another thread) stops the model at its next token; the stream then ends
    with `.answer` left None and `.cancelled` True.
    """

    def __init__(
        self, pipeline: Callable[[threading.Event], AnswerPipeline], on_cancel: Callable[[], object] | None = None
    ):
        self._pipeline = pipeline
        self._cancel = threading.Event()
        self._on_cancel = on_cancel  # e.g. a server's answer: hang up, so the server stops its model too
        self.answer: Answer | None = None

    def cancel(self) -> None:
        self._cancel.set()
        if self._on_cancel is not None:
            self._on_cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def events(self) -> Iterator[AnswerEvent]:
        answer = yield from self._pipeline(self._cancel)
        self.answer = None if self.cancelled else answer
        if self.answer is not None:
            yield AnswerEvent("done", self.answer.text, self.answer.timings.total_s, answer=self.answer)

    def __iter__(self) -> Iterator[str]:
        for event in self.events():
            if event.kind == "sentence":
                yield event.text


def render_messages(prompts: dict[str, Template], question: str, passages: Sequence[Hit]) -> list[Message]:
    block = "\n\n".join(
        prompts["passage"].render(key=i, title=p.heading, text=p.text) for i, p in enumerate(passages, start=1)
    )
    return [
        # The system prompt is identical for every question, so llama.cpp reuses its KV cache.
        {"role": "system", "content": prompts["system"].render()},
        {"role": "user", "content": prompts["answer"].render(passages=block, question=question)},
    ]


# Stands for the question while the prompt's prefix is prefilled (a private-use character: no
# passage or prompt file holds it), so the prefix is cut exactly where the question goes.
QUESTION_SLOT = "\ue000"


def render_prefix(prompts: dict[str, Template], passages: Sequence[Hit]) -> list[Message]:
    """The messages of an answer with `QUESTION_SLOT` for the question: the prompt up to the slot
    is what can be evaluated before the question is known (the passages come first)."""
    return render_messages(prompts, QUESTION_SLOT, passages)


def _says_cannot_answer(text: str) -> bool:
    lowered = " ".join(text.lower().split())
    return (
        "corpus does not answer" in lowered
        or "passages do not contain" in lowered
        or "not mentioned in the passages" in lowered
    )


# --- the quotation fallback ------------------------------------------------------------------------
# A passage may be quoted when retrieval is confident about its paper: the search by words (BM25) and
# a search by meaning (MiniLM chunks or the paper model's abstracts) both rank it first, or the question
# calls the paper by name and one search ranks it first, or its MiniLM cosine to the question is at
# least QUOTE_MIN_SIMILARITY (`min_relevance`, the gate before the model, is 0.25). A paraphrased
# question's best passage has a cosine of 0.4-0.6 whether it is the right paper or not, and the two
# searches by meaning often agree on a wrong one (they are alike); a generic name ("MLP") can call a
# paper by name. Measured on every dev and val question (benchmarks/quote_rule.py): the papers quoted
# were the right ones 23 of 23 times on dev, 53 of 54 on val, and no unanswerable question was quoted.
QUOTE_MIN_SIMILARITY = 0.6
# The sentence quoted is the one with the best cosine + QUOTE_WORDS x word overlap (`passages.sentence_scores`).
QUOTE_WORDS = 0.5  # best on dev (27 of 33 answers found, against 23 by cosine and 25 by words alone)
QUOTE_LEAD = "The closest passage says:"
QUOTE_NOTICE = (
    "none of the model's sentences was supported by the passages: the answer quotes the passage sentence "
    "closest to the question"
)
_QUESTION_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def confident(hit: Hit, min_similarity: float = QUOTE_MIN_SIMILARITY) -> bool:
    """Is retrieval sure enough of this passage's paper to quote it without the model's word?"""
    by_meaning = hit.dense_rank == 1 or hit.paper_rank == 1
    by_words = hit.lexical_rank == 1
    agreed = by_words and by_meaning
    named = hit.named and (by_words or by_meaning)
    return agreed or named or (hit.dense_score or 0.0) >= min_similarity


@dataclass
class Quote:
    passage: int  # index into the passages shown
    sentence: str
    score: float


def _question_names(question: str) -> set[str]:
    """The names a question uses, sentence by sentence (a sentence's capitalised first word is no name)."""
    return {n for part in _QUESTION_SENTENCE.split(question) for n in names(part)}


def best_quote(
    question: str,
    passages: Sequence[Hit],
    embedder: Embedder | None = None,
    trusted: Callable[[Hit], bool] | None = None,
) -> Quote | None:
    """The passage sentence that best matches the question, if one may stand as the answer; else None.

    Only a confident passage is quoted (`confident`, or `trusted`), and only one that mentions every
    name the question uses (a question about another model's score, or a metric the paper does not
    report, is not answered by it: the questions the corpus cannot answer are mostly of that kind), nor
    one that never states a number the question gives ("at distance eleven").
    Among their sentences that say something beyond the question, the best by the embedder's cosine
    combined with word overlap is chosen (neither alone generalises); a question asking for a quantity
    or a date is answered only by a sentence stating a number the question does not, one asking who by
    none.
    """
    if asks_who(question):
        return None  # abstracts seldom name people: a quote would answer another question
    asked = content_words(question)
    wanted = _question_names(question)
    given = numbers_stated(question)  # "at distance eleven": a passage that never says eleven cannot answer it
    candidates: list[tuple[int, str]] = []
    for index, hit in enumerate(passages):
        if not (trusted or confident)(hit) or not all(mentions(n, Evidence.of(hit).spelled) for n in wanted):
            continue
        if given - numbers_stated(hit.text):
            continue
        for sentence in passage_sentences(hit.text):
            if len(content_words(sentence) - asked) >= 2:  # not a restatement of the question
                candidates.append((index, sentence))
    if not candidates:
        return None
    overlap = []
    for _, sentence in candidates:
        words = content_words(sentence)
        overlap.append(len(asked & words) / math.sqrt(len(words) + 1))
    cosine = [0.0] * len(candidates)
    if embedder is not None:
        vectors = embedder.encode([sentence for _, sentence in candidates])
        cosine = [float(v) for v in vectors @ embedder.encode_query(question)]
    scores = [c + QUOTE_WORDS * o for c, o in zip(cosine, overlap)]
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    index, sentence = candidates[best]
    if asks_for_number(question) and not numbers(sentence) - numbers(question):
        return None  # the closest sentence does not state the quantity asked for (a number of its own)
    return Quote(index, sentence, scores[best])


def quoted_answer(quote: Quote, passages: Sequence[Hit]) -> tuple[str, Citation]:
    """The answer text of a quotation and its one citation."""
    hit = passages[quote.passage]
    sentence = quote.sentence.strip().strip('“”"')
    text = f"{QUOTE_LEAD} “{sentence}” [1]"
    citation = Citation(key=1, paper_id=hit.paper_id, title=hit.title, text=hit.text, sentences=[quote.sentence])
    return text, citation


def generate_answer(
    request: AnswerRequest,
    passages: Sequence[Hit],
    generator: Generator,
    prompts: dict[str, Template],
    settings: Settings,
    cancel: threading.Event,
    embedder: Embedder | None = None,
) -> AnswerPipeline:
    """Stream the model's answer as events: each token as it comes, each sentence once its citation
    checks out (or why it was dropped); return the `Answer` (None if cancelled). When nothing the model
    wrote survives, the closest passage sentence is quoted if retrieval is confident (`best_quote`;
    `embedder` scores the sentences), else the answer is the refusal."""
    messages = render_messages(prompts, request.standalone, passages)
    prompt_tokens = sum(generator.count_tokens(m["content"]) for m in messages)
    checker = CitationChecker(passages, settings.answer.min_support, request.standalone)
    timings = request.timings
    raw, completion_tokens, shown = "", 0, 0
    done = 0  # sentences of `raw` already checked

    def checked(sentences: Sequence[str], start: int, stop: int) -> Iterator[AnswerEvent]:
        """Check sentences[start:stop]; each event says what is still unchecked after it."""
        nonlocal shown
        for i in range(start, stop):
            sentence, pending = sentences[i], " ".join(sentences[i + 1 :])
            before = len(checker.dropped)
            if _says_cannot_answer(sentence):
                checker.drop(sentence, "the model said the passages do not answer it")
                out = None
            else:
                out = checker.add(sentence)
            for dropped in checker.dropped[before:]:
                yield AnswerEvent("dropped", dropped.text, request.elapsed(), reason=dropped.reason, pending=pending)
            if out:
                yield AnswerEvent("sentence", ("" if shown == 0 else " ") + out, request.elapsed(), pending=pending)
                shown += 1

    for piece in generator.stream(
        messages, max_tokens=settings.answer.max_answer_tokens, stop=STOP, temperature=settings.answer.temperature
    ):
        if cancel.is_set():
            return None  # leaving the loop closes the model's generator: generation stops here
        if timings.first_token_s is None:
            timings.first_token_s = time.perf_counter() - request.started
        completion_tokens += 1
        raw += piece
        yield AnswerEvent("token", piece, timings.first_token_s if completion_tokens == 1 else request.elapsed())
        sentences = split_answer(raw)
        # All but the last sentence are complete (the last may still grow or get its [n]).
        yield from checked(sentences, done, len(sentences) - 1)
        done = max(done, len(sentences) - 1)
    if cancel.is_set():
        return None  # stopped before its first token (a model that reads its prompt can be stopped there)
    sentences = split_answer(raw)
    last = strip_keys(sentences[-1]).rstrip("\"')") if len(sentences) > done else ""
    cut = completion_tokens >= settings.answer.max_answer_tokens and last and not last.endswith((".", "!", "?"))
    yield from checked(sentences, done, len(sentences) - 1 if cut else len(sentences))
    if cut:  # cut off by the token limit mid-sentence: not a finished claim
        checker.drop(sentences[-1], "cut off by the token limit before it ended")
        yield AnswerEvent("dropped", sentences[-1], request.elapsed(), reason=checker.dropped[-1].reason)
    verified = checker.result()
    said_cannot = _says_cannot_answer(raw)
    quote = None if verified.citations or said_cannot else best_quote(request.standalone, passages, embedder)
    if quote is not None:
        text, citation = quoted_answer(quote, passages)
        timings.total_s = time.perf_counter() - request.started
        answer = Answer(
            question=request.question,
            text=text,
            citations=[citation],
            refused=False,
            quoted=True,
            standalone_question=request.standalone,
            raw_text=raw,
            model=generator.name,
            timings=timings,
            notices=[*request.notices, QUOTE_NOTICE],
            dropped=verified.dropped,
        )
        yield AnswerEvent("sentence", text, request.elapsed())
    elif not verified.citations:
        reason = (
            "the model said the passages do not answer it"
            if said_cannot
            else ("no sentence of the model's answer was supported by a retrieved passage")
        )
        answer = request.refusal(reason, generator.name, raw, verified.dropped)
        yield AnswerEvent("sentence", CANNOT_ANSWER, request.elapsed())
    else:
        timings.total_s = time.perf_counter() - request.started
        answer = Answer(
            question=request.question,
            text=verified.text,
            citations=verified.citations,
            refused=False,
            standalone_question=request.standalone,
            raw_text=raw,
            model=generator.name,
            timings=timings,
            notices=request.notices,
            dropped=verified.dropped,
        )
    answer.passages = [
        Citation(key=i, paper_id=p.paper_id, title=p.title, text=p.text) for i, p in enumerate(passages, start=1)
    ]
    answer.prompt_tokens, answer.completion_tokens = prompt_tokens, completion_tokens
    return answer
