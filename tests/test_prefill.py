"""Prefill while the user types: `Assistant.prepare` (retrieval + the prompt up to the question into
the model's KV cache) and the chat's debounce around it.

The logic tests use a scripted model whose `prefill` takes steps that can be abandoned; the last
test proves with the real model that the answer after a preparation evaluates only the question's
tokens and says the same as without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from test_tui import QUESTION, REPLY, SIZE, settle, wait_until

from rag import Assistant, Prepared, Settings
from rag.answer.answering import QUESTION_SLOT
from rag.protocols import Message
from rag.testing import ScriptedGenerator
from rag.types import PrefillReport
from tui.app import DRAFT_STILL, make_app

OTHER = "Which loss keeps the experts balanced?"


class PrefillingGenerator(ScriptedGenerator):
    """A scripted model with a prefill of `steps` steps of `step_s` seconds each; it records every
    prefill and whether one ever ran while an answer was being generated."""

    def __init__(self, replies, *, steps: int = 5, step_s: float = 0.05, delay: float = 0.0):
        super().__init__(replies, delay=delay)
        self.steps, self.step_s = steps, step_s
        self.prefills: list[tuple[list[Message], PrefillReport]] = []
        self.started = threading.Event()  # a prefill has taken its first step
        self.generating = False
        self.overlapped = False

    def prefill(
        self, messages: Sequence[Message], *, upto: str, cancel: threading.Event | None = None
    ) -> PrefillReport:
        done = 0
        for _ in range(self.steps):
            if cancel is not None and cancel.is_set():
                break
            self.overlapped |= self.generating
            self.started.set()
            time.sleep(self.step_s)
            done += 1
        report = PrefillReport(self.steps, 0, done, complete=done == self.steps)
        self.prefills.append((list(messages), report))
        return report

    def stream(self, messages, **options):
        self.generating = True
        try:
            yield from super().stream(messages, **options)
        finally:
            self.generating = False


def prefix(messages: Sequence[Message]) -> str:
    """The user message up to the question's place."""
    return messages[-1]["content"].split(QUESTION_SLOT)[0]


@pytest.fixture
def assistant_with(rag_home, hash_embedder, small_corpus):
    made = []

    def build(generator, **settings) -> Assistant:
        a = Assistant(
            Settings(home=rag_home, min_relevance=0.0, **settings), embedder=hash_embedder, generator=generator
        )
        if not made:
            a.ingest([small_corpus])
        made.append(a)
        return a

    yield build
    for a in made:
        a.close()


# --- the library ----------------------------------------------------------------------------
def test_prepare_prefills_the_prompt_the_answer_then_starts_with(assistant_with):
    model = PrefillingGenerator([REPLY])
    a = assistant_with(model)
    prepared = a.prepare(QUESTION)
    assert isinstance(prepared, Prepared) and prepared.prefill is not None and prepared.prefill.complete
    [(messages, _)] = model.prefills
    assert QUESTION_SLOT in messages[-1]["content"] and QUESTION not in messages[-1]["content"]
    answer = a.ask(QUESTION)
    [sent] = model.calls
    assert sent[0] == messages[0]  # the same system prompt
    assert sent[-1]["content"].startswith(prefix(messages))  # the same passages, in the same order
    assert sent[-1]["content"][len(prefix(messages)) :].startswith(QUESTION)
    assert [c.paper_id for c in answer.passages] == prepared.paper_ids


def test_prepare_without_words_or_without_prefill_support(assistant_with):
    model = ScriptedGenerator([REPLY])  # like a model server: no prefill
    a = assistant_with(model)
    assert a.prepare("  ?!  ") is None
    prepared = a.prepare(QUESTION)
    assert prepared is not None and prepared.prefill is None and prepared.paper_ids
    assert model.calls == []  # nothing was generated


def test_a_new_draft_or_an_answer_stops_a_prefill_between_steps(assistant_with):
    model = PrefillingGenerator([REPLY], steps=200, step_s=0.02)
    a = assistant_with(model)
    results: list[Prepared | None] = []
    first = threading.Thread(target=lambda: results.append(a.prepare(OTHER)))
    first.start()
    assert model.started.wait(10)
    a.prepare(QUESTION, cancel=threading.Event()).prefill  # noqa: B018 - a newer draft wins
    first.join(10)
    assert not first.is_alive()
    [(_, stale), (_, newer)] = model.prefills
    assert not stale.complete and stale.evaluated < 200 and newer.complete

    model.started.clear()
    background = threading.Thread(target=lambda: results.append(a.prepare(OTHER)))
    background.start()
    assert model.started.wait(10)
    answer = a.ask(QUESTION)  # stops the prefill, then answers
    background.join(10)
    assert not background.is_alive() and not model.prefills[-1][1].complete
    assert not model.overlapped and not answer.refused and "2.1" in answer.text


def test_no_preparation_while_an_answer_runs(assistant_with):
    model = PrefillingGenerator([REPLY], delay=0.05)
    a = assistant_with(model)
    stream = a.stream(QUESTION)
    pieces = iter(stream)
    next(pieces)  # the answer is being generated
    assert a.prepare(OTHER) is None and model.prefills == []
    for _ in pieces:
        pass
    assert stream.answer is not None and a.prepare(OTHER) is not None


# --- the chat -------------------------------------------------------------------------------
async def type_text(pilot, text: str, every: float = 0.02) -> None:
    for character in text:
        await pilot.press("space" if character == " " else character)
        await pilot.pause(every)


async def test_the_chat_prepares_a_still_draft_and_a_newer_one_replaces_it(assistant_with):
    model = PrefillingGenerator([REPLY], steps=100, step_s=0.03)
    app = make_app(assistant=assistant_with(model))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.prompt.focus()
        await type_text(pilot, "logical error")  # keys faster than the debounce: nothing prepared yet
        assert model.prefills == [] and not model.started.is_set()
        await wait_until(pilot, model.started.is_set)
        await type_text(pilot, " rate")
        await wait_until(pilot, lambda: len(model.prefills) >= 1)  # stopped once "logical error rate" is still
        assert not model.prefills[0][1].complete
        await wait_until(pilot, lambda: len(model.prefills) >= 2, timeout=20)
        assert model.prefills[1][1].complete  # "logical error rate", left alone
        assert app.answers == []  # preparing never asks


async def test_enter_during_a_prefill_answers_and_nothing_is_prepared_during_the_answer(assistant_with):
    model = PrefillingGenerator([REPLY, REPLY], steps=200, step_s=0.03, delay=0.3)  # an answer of ~6 s
    app = make_app(assistant=assistant_with(model))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.prompt.focus()
        await type_text(pilot, QUESTION, every=0.0)
        await wait_until(pilot, model.started.is_set)
        await pilot.press("enter")
        await wait_until(pilot, lambda: model.generating)
        assert len(model.prefills) == 1 and not model.prefills[0][1].complete
        await type_text(pilot, OTHER)  # typed while the answer is written
        await pilot.pause(DRAFT_STILL + 0.2)
        assert model.generating and len(model.prefills) == 1  # nothing prepared during the answer
        await settle(app, pilot)
        [answer] = app.answers
        assert not answer.refused and "2.1" in answer.text and not model.overlapped
        assert app.prompt.text == OTHER


async def test_prefill_while_typing_can_be_turned_off(assistant_with):
    model = PrefillingGenerator([REPLY])
    app = make_app(assistant=assistant_with(model, prefill_while_typing=False))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.prompt.focus()
        await type_text(pilot, QUESTION, every=0.0)
        await pilot.pause(DRAFT_STILL + 0.3)
        assert model.prefills == []
        await pilot.press("enter")
        await settle(app, pilot)
        assert len(app.answers) == 1 and model.prefills == []


# --- the real model -------------------------------------------------------------------------
@pytest.mark.slow
def test_after_prepare_the_answer_evaluates_only_the_question(rag_home, embedder, small_corpus, small_model):
    a = Assistant(Settings(home=rag_home), embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    try:
        question = "By how much does the logical error rate fall when the code distance grows?"
        unprepared = a.ask(question)
        a.ask("Which loss keeps the experts of the sparse language model balanced?")  # another prompt in the cache
        prepared = a.prepare(question)
        assert prepared is not None and prepared.prefill is not None and prepared.prefill.complete
        assert prepared.prefill.evaluated > 100  # the passages were not in the cache
        assert small_model.llm.n_tokens == prepared.prefill.tokens
        answer = a.ask(question)
        use = small_model.last_prompt
        assert use is not None and use.reused >= prepared.prefill.tokens - 1
        assert use.tokens - use.reused < 40  # the question and the answer cue, not the passages
        assert answer.text == unprepared.text and answer.raw_text == unprepared.raw_text
    finally:
        a.close()
