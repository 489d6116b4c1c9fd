"""From a question and its passages to a verified, cited answer: generate, check each sentence, refuse.

The model is one replaceable part: each sentence it writes is shown only once its citation checks
out (rag/citations.py); when nothing survives, the answer is the refusal, with the draft and the
reasons kept on the `Answer` for whoever asks why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Pipeline
from dataclasses import dataclass, field

from .citations import CitationChecker, split_answer, strip_keys
from .llm import Generator, Message
from .prompts import CANNOT_ANSWER, Template
from .settings import Settings
from .types import Answer, AnswerEvent, Citation, Dropped, Hit, Timings

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
        prompts["passage"].render(key=i, title=p.title, text=p.text) for i, p in enumerate(passages, start=1)
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


def generate_answer(
    request: AnswerRequest,
    passages: Sequence[Hit],
    generator: Generator,
    prompts: dict[str, Template],
    settings: Settings,
    cancel: threading.Event,
) -> AnswerPipeline:
    """Stream the model's answer as events: each token as it comes, each sentence once its citation
    checks out (or why it was dropped); return the `Answer` (None if cancelled)."""
    messages = render_messages(prompts, request.standalone, passages)
    prompt_tokens = sum(generator.count_tokens(m["content"]) for m in messages)
    checker = CitationChecker(passages, settings.min_support, request.standalone)
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
        messages, max_tokens=settings.max_answer_tokens, stop=STOP, temperature=settings.temperature
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
    cut = completion_tokens >= settings.max_answer_tokens and last and not last.endswith((".", "!", "?"))
    yield from checked(sentences, done, len(sentences) - 1 if cut else len(sentences))
    if cut:  # cut off by the token limit mid-sentence: not a finished claim
        checker.drop(sentences[-1], "cut off by the token limit before it ended")
        yield AnswerEvent("dropped", sentences[-1], request.elapsed(), reason=checker.dropped[-1].reason)
    verified = checker.result()
    if not verified.citations:
        reason = (
            "the model said the passages do not answer it"
            if _says_cannot_answer(raw)
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
