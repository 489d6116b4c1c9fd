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
from .types import Answer, Citation, Dropped, Hit, Timings

STOP = ["\n\n\n", "Question:", "Passages:", "<|im_end|>", "<|endoftext|>"]


@dataclass
class AnswerRequest:
    """One question on its way to an answer: what was asked, what retrieval saw, and the clock."""

    question: str
    standalone: str
    started: float = field(default_factory=time.perf_counter)
    timings: Timings = field(default_factory=Timings)
    notices: list[str] = field(default_factory=list)

    def refusal(self, reason: str, model: str | None = None, raw: str = "",
                dropped: Sequence[Dropped] = ()) -> Answer:
        self.timings.total_s = time.perf_counter() - self.started
        return Answer(
            question=self.question, text=CANNOT_ANSWER, refused=True, standalone_question=self.standalone,
            timings=self.timings, notices=self.notices, model=model, refusal_reason=reason, raw_text=raw,
            dropped=list(dropped),
        )


class AnswerStream:
    """Iterate to get the verified answer text in pieces; `.answer` is set when the stream ends.

    `cancel()` (safe from another thread) stops the model at its next token; the stream then ends
    with `.answer` left None and `.cancelled` True.
    """

    def __init__(self, pipeline: Callable[[threading.Event], Pipeline[str, None, Answer | None]]):
        self._pipeline = pipeline
        self._cancel = threading.Event()
        self.answer: Answer | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[str]:
        answer = yield from self._pipeline(self._cancel)
        self.answer = None if self.cancelled else answer


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


def generate_answer(
    request: AnswerRequest, passages: Sequence[Hit], generator: Generator, prompts: dict[str, Template],
    settings: Settings, cancel: threading.Event,
) -> Pipeline[str, None, Answer | None]:
    """Stream the model's answer, yielding each sentence once its citation checks out; return the `Answer`
    (None if cancelled)."""
    messages = render_messages(prompts, request.standalone, passages)
    prompt_tokens = sum(generator.count_tokens(m["content"]) for m in messages)
    checker = CitationChecker(passages, settings.min_support)
    timings = request.timings
    raw, completion_tokens, shown = "", 0, 0
    done = 0  # sentences of `raw` already checked

    def checked(sentences: Sequence[str]) -> Iterator[str]:
        nonlocal shown
        for sentence in sentences:
            if _says_cannot_answer(sentence):
                checker.drop(sentence, "the model said the passages do not answer it")
                continue
            out = checker.add(sentence)
            if out:
                yield ("" if shown == 0 else " ") + out
                shown += 1

    for piece in generator.stream(messages, max_tokens=settings.max_answer_tokens, stop=STOP,
                                  temperature=settings.temperature):
        if cancel.is_set():
            return None  # leaving the loop closes the model's generator: generation stops here
        if timings.first_token_s is None:
            timings.first_token_s = time.perf_counter() - request.started
        completion_tokens += 1
        raw += piece
        sentences = split_answer(raw)
        # All but the last sentence are complete (the last may still grow or get its [n]).
        yield from checked(sentences[done : len(sentences) - 1])
        done = max(done, len(sentences) - 1)
    tail = split_answer(raw)[done:]
    cut = strip_keys(tail[-1]).rstrip("\"')") if tail else ""
    if completion_tokens >= settings.max_answer_tokens and cut and not cut.endswith((".", "!", "?")):
        checker.drop(tail.pop(), "cut off by the token limit before it ended")  # not a finished claim
    yield from checked(tail)
    verified = checker.result()
    if not verified.citations:
        reason = "the model said the passages do not answer it" if _says_cannot_answer(raw) else (
            "no sentence of the model's answer was supported by a retrieved passage")
        answer = request.refusal(reason, generator.name, raw, verified.dropped)
        yield CANNOT_ANSWER
    else:
        timings.total_s = time.perf_counter() - request.started
        answer = Answer(
            question=request.question, text=verified.text, citations=verified.citations, refused=False,
            standalone_question=request.standalone, raw_text=raw, model=generator.name, timings=timings,
            notices=request.notices, dropped=verified.dropped,
        )
    answer.passages = [
        Citation(key=i, paper_id=p.paper_id, title=p.title, text=p.text) for i, p in enumerate(passages, start=1)
    ]
    answer.prompt_tokens, answer.completion_tokens = prompt_tokens, completion_tokens
    return answer
