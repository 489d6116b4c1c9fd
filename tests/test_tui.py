"""The terminal chat, driven with Textual's pilot (scripted model) and once with the real model."""

from __future__ import annotations

import asyncio
import json

import pytest

from rag import Answer, Assistant, Citation, Paper, Settings, Timings
from rag.llm import ScriptedGenerator
from rag.prompts import CANNOT_ANSWER
from tui.app import ChatApp, SavedChat, make_app
from tui.widgets import (
    AnswerView, ChoiceScreen, HelpScreen, PaperScreen, PathScreen, QuestionView, SourceCard, TaskBar,
)

QUESTION = "How much does the logical error rate fall?"
REPLY = "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]."
TITLE = "Quantum Error Correction with Surface Codes on Superconducting Qubits"
SIZE = (120, 36)


@pytest.fixture
def make_assistant(rag_home, hash_embedder, small_corpus):
    """An Assistant over the 5-paper test corpus whose model is a script (and whose embedder hashes words)."""
    made = []

    def build(replies=None, delay: float = 0.0, settings: Settings | None = None,
              generator: ScriptedGenerator | None = None) -> Assistant:
        if generator is None and replies is not None:
            generator = ScriptedGenerator(replies, delay=delay)
        a = Assistant(settings or Settings(home=rag_home), embedder=hash_embedder, generator=generator)
        if not made:
            a.ingest([small_corpus])
        made.append(a)
        return a

    yield build
    for a in made:
        a.close()


class Notes:
    """Records the app's notifications."""

    def __init__(self, app: ChatApp):
        self.items: list[tuple[str, str]] = []
        original = app.notify

        def notify(message, *, title="", severity="information", **kwargs):
            self.items.append((severity, str(message)))
            return original(message, title=title, severity=severity, **kwargs)

        app.notify = notify

    def errors(self) -> list[str]:
        return [m for s, m in self.items if s == "error"]


async def wait_until(pilot, condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def settle(app: ChatApp, pilot) -> None:
    """Wait for every worker (start-up, answers, ingest) and the messages they posted."""
    await app.workers.wait_for_complete()
    await pilot.pause()


def _first_command(app: ChatApp) -> str:
    """The command the palette would run on Enter ("" while it is still searching)."""
    lists = app.screen.query("CommandList")
    if not lists or lists.first().option_count == 0:
        return ""
    return str(lists.first().get_option_at_index(0).prompt)


async def ask(app: ChatApp, pilot, question: str) -> None:
    app.prompt.focus()
    app.prompt.load_text(question)
    await pilot.press("enter")


# --- asking ----------------------------------------------------------------------------------
async def test_answer_streams_in_and_sources_fill(make_assistant):
    first = "We demonstrate a distance-five surface code on a superconducting processor [1]."
    app = make_app(assistant=make_assistant([f"{first} {REPLY}"], delay=0.03))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.status.papers == 5 and app.status.model == "scripted"
        await ask(app, pilot, QUESTION)
        assert app.prompt.text == ""  # the input is cleared while the answer streams
        [view] = app.query(AnswerView)
        # The first verified sentence is on screen before the model has finished the second.
        await wait_until(pilot, lambda: "superconducting processor [1]" in view.text)
        assert app.generating and "factor of 2.1" not in view.text
        await settle(app, pilot)

        assert not app.generating
        [answer] = app.answers
        assert not answer.refused and answer.citations[0].title == TITLE
        assert "falls by a factor of 2.1" in view.text and "[1]" in view.text
        assert view.has_class("-cited") and view.has_class("-selected")
        assert [card.citation.title for card in app.query(SourceCard)] == [TITLE]
        assert "retrieve" in str(app.status.render()) and "tok/s" in str(app.status.render())
        assert app.query_one(QuestionView).question == QUESTION


async def test_source_opens_the_full_abstract(make_assistant):
    app = make_app(assistant=make_assistant([REPLY]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        card = app.query_one(SourceCard)
        card.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PaperScreen)
        assert "minimum-weight perfect matching decoder" in app.screen.paper.abstract  # beyond the passage
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PaperScreen)


async def test_escape_cancels_and_gives_the_question_back(make_assistant):
    # One verified sentence, then a sentence of 200 words: cancelling must not wait for its end.
    long_reply = f"{REPLY} The logical error rate {'falls ' * 200}[1]."
    a = make_assistant([long_reply, REPLY], delay=0.05)
    app = make_app(assistant=a)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        view = app.query_one(AnswerView)
        await wait_until(pilot, lambda: "[1]" in view.text)  # mid-stream
        worker = app.pending.worker
        await pilot.press("escape")
        await pilot.pause()
        assert app.prompt.text == QUESTION
        assert not app.generating and not app.query(AnswerView) and not app.query(QuestionView)
        assert worker.is_cancelled
        await settle(app, pilot)
        assert not app.query(AnswerView) and app.answers == []  # nothing the old worker sent shows up
        assert not (a.settings.home / "chats").exists()

        # The restored question can be sent again at once: the cancelled answer stopped at the
        # model's next token (finishing its 200-word sentence would hold the model for 10 s).
        started = asyncio.get_running_loop().time()
        await pilot.press("enter")
        await settle(app, pilot)
        assert asyncio.get_running_loop().time() - started < 4
        assert [x.text for x in app.answers] == [REPLY]


async def test_follow_up_uses_the_history(make_assistant):
    rewritten = "Which decoder does the surface code on a superconducting processor use?"
    decoder = "Decoding uses a minimum-weight perfect matching decoder that runs in real time [1]."

    def script(messages):
        if len(messages) == 1:  # the condense prompt (no system message)
            return rewritten
        return decoder if "decoder" in messages[-1]["content"].split("Question:")[-1] else REPLY

    model = ScriptedGenerator(script)
    app = make_app(assistant=make_assistant(generator=model))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        await ask(app, pilot, "Which decoder does it use?")
        await settle(app, pilot)

        assert len(app.answers) == 2
        first, second = app.query(AnswerView)
        assert second.has_class("-selected") and "minimum-weight" in str(app.query_one(SourceCard).render())
        first.focus()  # selecting an earlier answer shows its sources
        await pilot.pause()
        assert first.has_class("-selected") and not second.has_class("-selected")
        assert "factor of 2.1" in str(app.query_one(SourceCard).render())
        condense_call = model.calls[1]
        assert QUESTION in condense_call[0]["content"]  # the earlier question was passed as history
        assert app.answers[1].standalone_question == rewritten
        assert "minimum-weight" in app.answers[1].text
        assert len(app.query(AnswerView)) == 2


async def test_first_run_builds_the_index_with_progress(rag_home, hash_embedder, small_corpus, monkeypatch):
    class SmallCorpusAssistant(Assistant):
        """The first-run index build, over the test corpus instead of the bundled one."""

        def ensure_index(self, progress=None, on_wait=None):
            return None if self.index.exists() else self.ingest([small_corpus], progress=progress, on_wait=on_wait)

    labels, advanced = [], []
    start, advance = TaskBar.start, TaskBar.advance
    monkeypatch.setattr(TaskBar, "start", lambda bar, label, total=None: (labels.append(label), start(bar, label, total)))
    monkeypatch.setattr(TaskBar, "advance", lambda bar, n, total: (advanced.append((n, total)), advance(bar, n, total)))
    a = SmallCorpusAssistant(Settings(home=rag_home), embedder=hash_embedder, generator=ScriptedGenerator([REPLY]))
    app = make_app(assistant=a)
    try:
        async with app.run_test(size=SIZE) as pilot:
            bar = app.query_one(TaskBar)
            await ask(app, pilot, QUESTION)  # asked while the index is being built: it waits
            await settle(app, pilot)
            assert any(label.startswith("First run: indexing") for label in labels)
            assert sum(n for n, _ in advanced) == advanced[-1][1] > 0  # the bar went to its total
            assert not bar.active and app.status.papers == 5
            assert [x.text for x in app.answers] == [REPLY]
    finally:
        a.close()


# --- errors ----------------------------------------------------------------------------------
async def test_empty_question_is_an_error_notification(make_assistant):
    app = make_app(assistant=make_assistant([REPLY]))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await settle(app, pilot)
        await ask(app, pilot, "   \n ")
        await pilot.pause()
        assert any("the question is empty" in m for m in notes.errors())
        assert not app.query(AnswerView) and not app.generating

        await ask(app, pilot, QUESTION)  # the app keeps working
        await settle(app, pilot)
        assert len(app.answers) == 1 and not app.answers[0].refused


async def test_missing_model_is_a_notification_and_the_app_keeps_working(make_assistant, rag_home):
    a = make_assistant(None, settings=Settings(home=rag_home, model="no-such-model"))
    app = make_app(assistant=a)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await settle(app, pilot)
        assert app.status.model_state == "not loaded"
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        assert any("unknown model 'no-such-model'" in m for m in notes.errors())
        assert app.prompt.text == QUESTION  # the question is not lost
        assert not app.query(AnswerView) and not app.generating
        await pilot.press("f1")  # still responsive
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_refused_answer_is_shown_as_refused(make_assistant):
    app = make_app(assistant=make_assistant([CANNOT_ANSWER]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        [answer] = app.answers
        assert answer.refused
        view = app.query_one(AnswerView)
        assert view.has_class("-refused") and not view.has_class("-cited")
        assert view.text == CANNOT_ANSWER and "no answer" in view.border_title
        assert not app.query(SourceCard)
        assert "No sources" in str(app.sources.query_one(".refused").render())


async def test_copy_answer_with_references(make_assistant):
    app = make_app(assistant=make_assistant([REPLY]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        await pilot.press("f3")
        assert app.clipboard.startswith(f"Q: {QUESTION}\n\n{REPLY}")
        assert f"[1] {TITLE} (A. Fowler, B. Martinis; 2023;" in app.clipboard


# --- chats -----------------------------------------------------------------------------------
async def test_chats_are_saved_and_reopened(make_assistant, rag_home):
    a = make_assistant([REPLY])
    app = make_app(assistant=a)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        [path] = (rag_home / "chats").glob("*.json")
        saved = SavedChat.model_validate_json(path.read_text())
        assert saved.title == QUESTION and [x.text for x in saved.answers] == [REPLY]
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.answers == [] and not app.query(AnswerView) and not app.query(SourceCard)

    # A new session (as after a restart) lists the chat and reopens it, sources included.
    model = ScriptedGenerator([REPLY])
    app = make_app(assistant=make_assistant(generator=model))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("enter")
        await settle(app, pilot)
        assert [x.text for x in app.answers] == [REPLY]
        assert app.query_one(AnswerView).text == REPLY
        assert [card.citation.title for card in app.query(SourceCard)] == [TITLE]
        assert app.query_one(SourceCard).paper is not None  # the paper was fetched for the card
        await ask(app, pilot, "How much does it fall?")  # continues the reopened chat
        await settle(app, pilot)
        assert len(app.answers) == 2
        condense_call = model.calls[0]  # the reopened answers are the follow-up's history
        assert len(condense_call) == 1 and QUESTION in condense_call[0]["content"]
        assert len(json.loads(path.read_text())["answers"]) == 2


@pytest.mark.slow  # types a path key by key: ~8 s
async def test_reingest_shows_progress_and_updates_the_corpus_size(make_assistant, tmp_path):
    app = make_app(assistant=make_assistant([REPLY]))
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"title": "Tidal Energy Harvesting with Oscillating Foils",
                                 "abstract": "Oscillating foils extract power from tidal streams. We test a "
                                             "two-foil array in a flume and reach an efficiency of 41 percent."}) + "\n")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        started = []
        bar = app.query_one(TaskBar)
        original = bar.start
        bar.start = lambda label, total=None: (started.append(label), original(label, total))
        await pilot.press("ctrl+p")  # command palette -> "Ingest file or folder" -> the path
        await pilot.pause()
        await pilot.press(*"ingest file")
        await wait_until(pilot, lambda: "Ingest file or folder" in _first_command(app))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PathScreen))
        await pilot.press(*str(extra), "enter")
        await settle(app, pilot)
        assert f"Ingesting {extra}" in started and not bar.active
        assert app.status.papers == 6


async def test_keys_help_and_model_list(make_assistant):
    app = make_app(assistant=make_assistant([REPLY]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("?")  # typed into the input, not the help
        assert app.prompt.text == "?" and not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("f2")
        assert isinstance(app.screen, ChoiceScreen)
        options = app.screen.query_one("OptionList")
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert names == [m.name for m in app.assistant.models.status()]


# --- snapshots -------------------------------------------------------------------------------
# The snapshots pin the layout, so they show fixed answers (a saved chat) rather than whatever the
# retrieval and the passage selection of the day produce; the tests above cover the pipeline.
PASSAGE = ("Surface codes protect logical qubits by measuring stabilizers on a two-dimensional lattice of "
           "physical qubits. The logical error rate falls by a factor of 2.1 when the code distance grows "
           "from three to five. Decoding uses a minimum-weight perfect matching decoder that runs in real time.")


def _small_paper_id(small_corpus) -> str:
    record = json.loads((small_corpus / "small.jsonl").read_text().splitlines()[0])
    return Paper(title=record["title"], abstract=record["abstract"], source="small.jsonl").paper_id


def _fixed_answer(small_corpus, refused: bool = False, question: str = QUESTION) -> Answer:
    timings = Timings(retrieve_s=0.05, first_token_s=0.4, total_s=1.4)
    if refused:
        return Answer(question=question, text=CANNOT_ANSWER, refused=True, model="scripted", timings=timings,
                      completion_tokens=8, refusal_reason="the model said the passages do not answer it")
    citation = Citation(key=1, paper_id=_small_paper_id(small_corpus), title=TITLE, text=PASSAGE)
    return Answer(question=question, text=REPLY, citations=[citation], model="scripted", timings=timings,
                  completion_tokens=20)


def _open_saved(app: ChatApp, answers: list[Answer]):
    async def run_before(pilot) -> None:
        app.prompt.cursor_blink = False
        chat = SavedChat(id="snapshot", title=answers[0].question, answers=answers)
        app.store.save(chat)
        await settle(app, pilot)
        await app.open_chat("snapshot")
        await settle(app, pilot)

    return run_before


def test_snapshot_answer_with_sources(make_assistant, small_corpus, snap_compare):
    app = make_app(assistant=make_assistant([REPLY]))
    assert snap_compare(app, terminal_size=SIZE, run_before=_open_saved(app, [_fixed_answer(small_corpus)]))


def test_snapshot_refused_after_cited(make_assistant, small_corpus, snap_compare):
    app = make_app(assistant=make_assistant([REPLY]))
    answers = [_fixed_answer(small_corpus), _fixed_answer(small_corpus, True, "Which decoder won the prize?")]
    assert snap_compare(app, terminal_size=SIZE, run_before=_open_saved(app, answers))


# --- the real model --------------------------------------------------------------------------
@pytest.mark.llm
async def test_real_model_answers_in_the_chat(rag_home, embedder, small_corpus, small_model):
    a = Assistant(Settings(home=rag_home), embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    app = make_app(assistant=a)
    try:
        async with app.run_test(size=SIZE) as pilot:
            notes = Notes(app)
            await settle(app, pilot)
            await ask(app, pilot, "By how much does the logical error rate fall when the code distance grows?")
            await asyncio.wait_for(settle(app, pilot), timeout=300)
            assert notes.errors() == []
            [answer] = app.answers
            view = app.query_one(AnswerView)
            assert view.has_class("-refused" if answer.refused else "-cited")
            if not answer.refused:
                assert len(app.query(SourceCard)) == len(answer.citations) >= 1
            assert answer.model == small_model.name
    finally:
        a.close()


async def test_corrupt_index_is_a_notification(rag_home, hash_embedder):
    (rag_home / "index").mkdir(parents=True)
    (rag_home / "index" / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    a = Assistant(Settings(home=rag_home), embedder=hash_embedder, generator=ScriptedGenerator([REPLY]))
    app = make_app(assistant=a)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await settle(app, pilot)
        await ask(app, pilot, QUESTION)
        await settle(app, pilot)
        assert any("rag ingest --rebuild" in m for m in notes.errors())
        assert app.prompt.text == QUESTION and not app.query(AnswerView)
        assert app.status.model_state == "ready"  # the model still loaded
