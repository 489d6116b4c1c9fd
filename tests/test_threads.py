"""One `Assistant` called from several threads: its uses run one at a time and a waiting caller is told
what it waits for; an ingest runs beside the answers; a stopped answer frees it. No caller needs a lock
of its own (the chat and `rag serve` keep none)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from rag import Assistant, Cancelled, Settings
from rag.busy import Busy
from rag.protocols import Message
from rag.testing import ScriptedGenerator, write_synthetic_corpus

QUESTION = "How much does the logical error rate fall?"
REPLY = "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]."


class HeldGenerator(ScriptedGenerator):
    """Writes its first word, then waits for `release`; records whether two answers ever overlapped."""

    def __init__(self, replies: Sequence[str]):
        super().__init__(replies)
        self.release = threading.Event()
        self.writing = threading.Event()
        self.inside = 0
        self.overlapped = False
        self._count = threading.Lock()

    def stream(self, messages: Sequence[Message], **kwargs) -> Iterator[str]:
        with self._count:
            self.inside += 1
            self.overlapped |= self.inside > 1
        try:
            for i, piece in enumerate(super().stream(messages, **kwargs)):
                yield piece
                if i == 0:
                    self.writing.set()
                    assert self.release.wait(10), "never released"
        finally:
            with self._count:
                self.inside -= 1


@pytest.fixture
def held(settings_no_gate, hash_embedder, small_corpus) -> Iterator[tuple[Assistant, HeldGenerator]]:
    model = HeldGenerator([REPLY])
    a = Assistant(settings_no_gate, embedder=hash_embedder, generator=model)
    a.ingest([small_corpus])
    yield a, model
    model.release.set()
    a.close()


@pytest.fixture
def settings_no_gate(rag_home) -> Settings:
    # Hash embeddings give low cosines: no relevance gate, so the scripted model is always asked.
    return Settings(home=rag_home, min_relevance=0.0, context_by_meaning=False)


def in_thread(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


def test_questions_from_several_threads_are_answered_one_at_a_time(held):
    a, model = held
    first, first_out = in_thread(a.ask, QUESTION)
    assert model.writing.wait(5)
    assert a.busy_with == "an answer being written"
    second, second_out = in_thread(a.ask, QUESTION)
    time.sleep(0.3)  # the second question waits: its model call has not started
    assert len(model.calls) == 1 and second_out == []
    model.release.set()
    first.join(10), second.join(10)
    assert [x.text for x in first_out + second_out] == [REPLY, REPLY]
    assert not model.overlapped and a.busy_with is None


def test_a_waiting_answer_is_told_what_it_waits_for(held):
    a, model = held
    answering, _ = in_thread(a.ask, QUESTION)
    assert model.writing.wait(5)
    told: list[str] = []
    waiting, pieces = in_thread(lambda: list(a.stream(QUESTION, on_stage=told.append)))
    time.sleep(0.3)
    assert told == ["waiting for an answer being written"]
    model.release.set()
    answering.join(10), waiting.join(10)
    assert told[1:3] == ["searching", "reading the passages"] and pieces[0]


def test_a_search_waits_for_the_answer_in_another_thread(held):
    a, model = held
    answering, _ = in_thread(a.ask, QUESTION)
    assert model.writing.wait(5)
    searching, hits = in_thread(a.search, "surface codes", 2)
    time.sleep(0.3)
    assert hits == [] and searching.is_alive()
    model.release.set()
    answering.join(10), searching.join(10)
    assert hits[0][0].title.startswith("Quantum Error Correction")


def test_a_waiting_call_can_be_given_up(held):
    a, model = held
    answering, _ = in_thread(a.ask, QUESTION)
    assert model.writing.wait(5)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled), a.using("a look-up", stop.is_set):
        pass
    assert time.monotonic() - started < 5
    model.release.set()
    answering.join(10)


def test_a_stopped_answer_is_named_to_the_next_and_frees_the_assistant(held):
    a, model = held
    stream = a.stream(QUESTION)
    steps = iter(stream.events())
    running, _ = in_thread(lambda: list(steps))
    assert model.writing.wait(5)
    stream.cancel()
    assert a.busy_with is not None and a.busy_with.startswith("the stopped answer to end")
    model.release.set()
    running.join(10)
    assert stream.answer is None and stream.cancelled and a.busy_with is None
    assert a.ask(QUESTION).text == REPLY


def test_an_answer_cancelled_while_it_waits_ends_without_an_answer(held):
    a, model = held
    answering, _ = in_thread(a.ask, QUESTION)
    assert model.writing.wait(5)
    waiting = a.stream(QUESTION)
    threading.Timer(0.2, waiting.cancel).start()
    assert list(waiting) == [] and waiting.answer is None and waiting.cancelled
    assert len(model.calls) == 1  # the waiting answer never reached the model
    model.release.set()
    answering.join(10)


def test_an_ingest_runs_beside_an_answer_and_the_next_search_sees_its_papers(held, tmp_path):
    a, model = held
    answering, answer = in_thread(a.ask, QUESTION)
    assert model.writing.wait(5)
    more = write_synthetic_corpus(tmp_path / "more.jsonl", 3)
    report = a.ingest([more])  # returns while the answer still holds the assistant
    assert report.added == 3 and answer == [] and a.busy_with == "an answer being written"
    assert a.paper_count() == 8  # read beside the answer, without waiting for it
    model.release.set()
    answering.join(10)
    assert answer[0].text == REPLY
    assert a.stats().papers == 8
    titles = {h.title for h in a.search("marker zq2x", k=8)}
    assert any("zq2x" in t for t in titles)


def test_the_busy_lock_is_reentrant_in_its_thread_and_not_for_a_stream():
    busy = Busy()
    with busy.hold("outer") as outer, busy.hold("inner") as inner:
        assert inner is outer and busy.holder == "outer"
    with busy.hold("a stream", owned=False), pytest.raises(Cancelled), busy.hold("the same thread", wait=False):
        pass
    assert busy.holder is None


def test_the_real_model_answers_questions_from_several_threads_as_it_does_one_by_one(
    settings, embedder, small_corpus, small_model
):
    """llama.cpp holds one KV cache and is not safe to run twice at once: three threads asking together get
    the answers the same questions get one by one (a race would crash, or mix two prompts' tokens)."""
    a = Assistant(settings, embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    questions = [
        "How many experts does the sparse mixture-of-experts language model use?",
        "By how much does the logical error rate fall when the code distance grows?",
        "Which loss keeps the experts of the sparse language model balanced?",
    ]
    try:
        alone = [a.ask(q).text for q in questions]
        threads = [in_thread(a.ask, q) for q in questions]
        for thread, _ in threads:
            thread.join(300)
        together = [out[0].text for _, out in threads]
        assert together == alone and all("[1]" in text or "[2]" in text for text in alone)
    finally:
        a.close()
