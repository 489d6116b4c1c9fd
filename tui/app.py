"""`rag chat`: a Textual chat over `rag.Assistant` (answers stream in, sources at hand).

The app holds the keys, the command palette and the workers; the widgets in `tui.widgets` post
Message classes to it. Every question, ingest and model load goes through the `Assistant` API in a
thread worker (one at a time, behind a lock), and reports back with messages, so the UI never
freezes. No retrieval or prompt logic lives here.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from rag import Answer, Assistant, AnswerStream, Paper, RagError, Settings, clean_question

from .widgets import (
    AnswerView,
    ChoiceScreen,
    ConfirmScreen,
    Conversation,
    HelpScreen,
    PaperScreen,
    PathScreen,
    PromptInput,
    QuestionView,
    SourceCard,
    SourcesPanel,
    StatusLine,
    TaskBar,
)

KEYS = [
    ("Enter", "send the question"),
    ("Shift+Enter, Ctrl+J", "new line in the question"),
    ("Esc", "cancel the answer; the question comes back"),
    ("Tab, Shift+Tab", "move between input, answers and sources"),
    ("Enter on a source", "open the paper's full abstract"),
    ("Ctrl+N", "new chat"),
    ("Ctrl+O", "open a saved chat"),
    ("F2", "switch model (models.txt)"),
    ("F3, c on an answer", "copy the selected answer with references"),
    ("F5", "re-ingest the bundled corpus (skips unchanged)"),
    ("F6", "rebuild the index from scratch"),
    ("Ctrl+P", "commands (also: ingest a file or folder)"),
    ("F1, ?", "these keys (? when not typing)"),
    ("Ctrl+Q", "quit"),
]


# --- saved chats ------------------------------------------------------------------------------
class SavedChat(BaseModel):
    """One conversation as stored in HOME/chats/<id>.json."""

    id: str
    title: str = ""
    created: datetime = Field(default_factory=datetime.now)
    updated: datetime = Field(default_factory=datetime.now)
    answers: list[Answer] = Field(default_factory=list)


class ChatStore:
    """Chats as JSON files (one per chat), written atomically."""

    def __init__(self, folder: Path):
        self.folder = folder

    def new(self, title: str) -> SavedChat:
        chat_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        return SavedChat(id=chat_id, title=" ".join(title.split())[:80])

    def path(self, chat_id: str) -> Path:
        return self.folder / f"{chat_id}.json"

    def save(self, chat: SavedChat) -> Path:
        chat.updated = datetime.now()
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(chat.id)
        partial = target.with_suffix(".json.partial")
        partial.write_text(chat.model_dump_json(indent=2), encoding="utf-8")
        os.replace(partial, target)
        return target

    def load(self, chat_id: str) -> SavedChat:
        return SavedChat.model_validate_json(self.path(chat_id).read_text(encoding="utf-8"))

    def list(self) -> list[SavedChat]:
        """Saved chats, most recently updated first; unreadable files are skipped."""
        chats = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            try:
                chats.append(self.load(path.stem))
            except (OSError, ValidationError, ValueError):
                continue
        return sorted(chats, key=lambda c: c.updated, reverse=True)


# --- messages from the workers ------------------------------------------------------------------
@dataclass
class AnswerPiece(Message):
    turn: int
    text: str


@dataclass
class AnswerWaiting(Message):
    """The answer waits for another task (model load, ingest) to release the Assistant."""

    turn: int


@dataclass
class AnswerDone(Message):
    turn: int
    answer: Answer
    papers: dict[str, Paper]


@dataclass
class AnswerFailed(Message):
    turn: int
    error: str


@dataclass
class TaskStarted(Message):
    label: str
    total: int | None = None


@dataclass
class TaskAdvanced(Message):
    advance: int
    total: int | None


@dataclass
class TaskFinished(Message):
    pass


@dataclass
class ModelChanged(Message):
    name: str
    state: str


@dataclass
class CorpusChanged(Message):
    papers: int | None


@dataclass
class PapersLoaded(Message):
    papers: dict[str, Paper]


@dataclass
class Problem(Message):
    """An error (or warning) a worker met: shown as a notification."""

    message: str
    title: str = "Error"
    severity: str = "error"


class Cancelled(Exception):
    """Raised inside a progress callback or the model's stream to stop a worker."""


class ModelLoadFailed(RagError):
    """The model could not be loaded for a question (the message says why)."""


@dataclass
class Turn:
    """The question being answered."""

    id: int
    question: str
    question_view: QuestionView
    answer_view: AnswerView
    worker: Worker | None = None


class ChatApp(App[None]):
    """The chat. Build it with `make_app(settings, assistant)`."""

    TITLE = "rag chat"
    # Inline rather than a .tcss file: the package data of the wheel only lists rag's corpus.
    CSS = """
    #main { height: 1fr; }
    #chat { width: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+o", "open_chat", "Open chat"),
        Binding("f2", "switch_model", "Model"),
        Binding("f3", "copy_answer", "Copy"),
        Binding("f5", "reingest", "Re-ingest"),
        Binding("f6", "rebuild", "Rebuild", show=False),
        Binding("f1,question_mark", "help", "Keys"),
    ]

    def __init__(self, assistant: Assistant, *, owns_assistant: bool = False):
        super().__init__()
        self.assistant = assistant
        self.owns_assistant = owns_assistant
        self.store = ChatStore(assistant.settings.home / "chats")
        self.chat: SavedChat | None = None
        self.answers: list[Answer] = []  # this chat's answers: the history of follow-ups
        self.papers: dict[str, Paper] = {}  # cited papers seen so far (for sources and copies)
        self.selected: AnswerView | None = None
        self.pending: Turn | None = None
        self._turns = 0
        self._lock = threading.Lock()  # one Assistant call at a time (it is not thread-safe)
        self._stream: AnswerStream | None = None  # the answer being generated (Esc cancels it)

    # --- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="chat"):
                yield Conversation()
                yield TaskBar()
                yield PromptInput()
            yield SourcesPanel()
        yield StatusLine()
        yield Footer()

    @property
    def conversation(self) -> Conversation:
        return self.query_one(Conversation)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def sources(self) -> SourcesPanel:
        return self.query_one(SourcesPanel)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def generating(self) -> bool:
        return self.pending is not None

    def on_mount(self) -> None:
        status = self.status
        try:
            status.model = self.assistant.settings.model or self.assistant.models.default.name
        except RagError:
            status.model = self.assistant.settings.model or "?"
        status.model_state = "not loaded"
        self.prompt.focus()
        self.prepare()

    def on_unmount(self) -> None:
        if self.owns_assistant:
            with self._lock:
                self.assistant.close()

    # --- workers ----------------------------------------------------------------------------
    @contextmanager
    def _assistant_lock(self, worker: Worker):
        """Wait for the Assistant (another worker may be using it); give up if cancelled."""
        while not self._lock.acquire(timeout=0.1):
            if worker.is_cancelled:
                raise Cancelled()
        try:
            if worker.is_cancelled:
                raise Cancelled()
            yield
        finally:
            self._lock.release()

    def _progress(self, worker: Worker, labels: dict[str, str]) -> Callable[[str, int, int], None]:
        """A progress(stage, advance, total) callback for the Assistant that drives the TaskBar."""
        seen: set[str] = set()

        def update(stage: str, advance: int, total: int) -> None:
            if worker.is_cancelled:
                raise Cancelled()
            if stage not in seen:
                seen.add(stage)
                self.post_message(TaskStarted(labels.get(stage, stage), total or None))
            self.post_message(TaskAdvanced(advance, total or None))

        return update

    def _problem(self, exc: BaseException, title: str) -> Problem:
        if isinstance(exc, RagError):
            return Problem(str(exc), title)
        return Problem(f"{type(exc).__name__}: {str(exc)[:200]}", title)

    @work(thread=True, group="prepare")
    def prepare(self) -> None:
        """First-run index build, corpus size, and the model loaded before the first question."""
        worker = get_current_worker()
        try:
            with self._assistant_lock(worker):
                try:
                    if not self.assistant.index.exists():
                        if self.assistant.first_run:  # else ensure_index says what the lost index held
                            self.post_message(TaskStarted("First run: indexing the bundled corpus"))
                        self.assistant.ensure_index(
                            self._progress(worker, {"embed": "First run: indexing the bundled corpus"}),
                            on_wait=lambda why: self.post_message(TaskStarted(why)),
                        )
                        self.post_message(Problem("the bundled corpus is indexed", "Index", "information"))
                    self.post_message(CorpusChanged(self.assistant.stats().papers))
                except Exception as exc:  # noqa: BLE001 - a broken index must not end the app
                    self.post_message(self._problem(exc, "Index"))
                finally:
                    self.post_message(TaskFinished())
                self._load_model(worker)
        except Cancelled:
            pass
        finally:
            self.post_message(TaskFinished())

    def _load_model(self, worker: Worker, notify: bool = True, name: str | None = None) -> str | None:
        """Load (assembling it on first use) the configured model, or switch to `name`; called with
        the lock held. A model that fails to load leaves the previous one in place.

        Returns the error message if it could not be loaded.
        """
        label = name or self.assistant.model_name
        self.post_message(ModelChanged(label, "loading…"))
        self.post_message(TaskStarted(f"Loading model {label}"))
        progress = self._progress(worker, {"assemble": f"Assembling {label} from its packages (first use)"})
        try:
            generator = self.assistant.set_model(name, progress) if name else self.assistant.load_generator(progress)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - a model that fails to load must not end the app
            self.post_message(ModelChanged(label, "not loaded"))
            problem = self._problem(exc, "Model")
            if notify:
                self.post_message(problem)
            return problem.message
        else:
            self.post_message(ModelChanged(generator.name, "ready"))
            return None
        finally:
            self.post_message(TaskFinished())

    @work(thread=True, exclusive=True, group="answer")
    def run_answer(self, turn: int, question: str, history: list[Answer]) -> None:
        worker = get_current_worker()
        try:
            if self._lock.locked():
                self.post_message(AnswerWaiting(turn))
            with self._assistant_lock(worker):
                if not self.assistant.model_loaded:  # it failed to load before: try again, visibly
                    error = self._load_model(worker, notify=False)
                    if error is not None:
                        raise ModelLoadFailed(error)
                stream = self._stream = self.assistant.stream(question, history=history)
                try:
                    for piece in stream:
                        if worker.is_cancelled:
                            return
                        self.post_message(AnswerPiece(turn, piece))
                finally:
                    self._stream = None
                if stream.cancelled or worker.is_cancelled:
                    return
                answer = stream.answer
                if answer is None:
                    raise RuntimeError("the answer stream ended without an answer")
                ids = [c.paper_id for c in answer.citations]
                papers = self.assistant.get_papers(ids) if ids else {}
            if not worker.is_cancelled:
                self.post_message(AnswerDone(turn, answer, papers))
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
            if not worker.is_cancelled:
                self.post_message(AnswerFailed(turn, self._problem(exc, "").message))

    @work(thread=True, exclusive=True, group="index")
    def run_ingest(self, paths: list[str] | None, rebuild: bool, label: str) -> None:
        worker = get_current_worker()
        try:
            self.post_message(TaskStarted(f"{label}: waiting for the assistant"))
            with self._assistant_lock(worker):
                self.post_message(TaskStarted(label))
                report = self.assistant.ingest(
                    paths, rebuild=rebuild, progress=self._progress(worker, {"embed": label}),
                    on_wait=lambda why: self.post_message(TaskStarted(why)),
                )
                self.post_message(CorpusChanged(self.assistant.stats().papers))
            problems = f", {len(report.problems)} records skipped" if report.problems else ""
            self.post_message(Problem(
                f"{report.added} added, {report.replaced} replaced, {report.unchanged} unchanged{problems} "
                f"({report.seconds:.1f}s)", label, "warning" if report.problems else "information",
            ))
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001
            self.post_message(self._problem(exc, label))
        finally:
            self.post_message(TaskFinished())

    @work(thread=True, exclusive=True, group="model")
    def run_switch_model(self, name: str) -> None:
        worker = get_current_worker()
        try:
            with self._assistant_lock(worker):
                self._load_model(worker, name=name)
        except Cancelled:
            pass

    @work(thread=True, group="papers")
    def load_papers(self, ids: list[str]) -> None:
        worker = get_current_worker()
        try:
            with self._assistant_lock(worker):
                papers = self.assistant.get_papers(ids) if ids else {}
            self.post_message(PapersLoaded(papers))
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001
            self.post_message(self._problem(exc, "Sources"))

    # --- worker messages --------------------------------------------------------------------
    @on(TaskStarted)
    def _task_started(self, message: TaskStarted) -> None:
        self.query_one(TaskBar).start(message.label, message.total)

    @on(TaskAdvanced)
    def _task_advanced(self, message: TaskAdvanced) -> None:
        self.query_one(TaskBar).advance(message.advance, message.total)

    @on(TaskFinished)
    def _task_finished(self) -> None:
        self.query_one(TaskBar).finish()

    @on(ModelChanged)
    def _model_changed(self, message: ModelChanged) -> None:
        self.status.model, self.status.model_state = message.name, message.state

    @on(CorpusChanged)
    def _corpus_changed(self, message: CorpusChanged) -> None:
        self.status.papers = message.papers

    @on(Problem)
    def _problem_reported(self, message: Problem) -> None:
        self.notify(message.message, title=message.title, severity=message.severity,  # type: ignore[arg-type]
                    timeout=10 if message.severity == "error" else 5, markup=False)

    @on(PapersLoaded)
    async def _papers_loaded(self, message: PapersLoaded) -> None:
        self.papers.update(message.papers)
        if self.selected is not None:
            await self.sources.show(self.selected.answer, self.papers)

    @on(AnswerWaiting)
    def _answer_waiting(self, message: AnswerWaiting) -> None:
        turn = self.pending
        if turn is not None and turn.id == message.turn:
            busy = "the model to load" if self.status.model_state.startswith("loading") else "the index task"
            turn.answer_view.set_stage(f"waiting for {busy}")

    @on(AnswerPiece)
    async def _answer_piece(self, message: AnswerPiece) -> None:
        turn = self.pending
        if turn is None or turn.id != message.turn:
            return  # a cancelled answer still draining
        await turn.answer_view.append(message.text)

    @on(AnswerDone)
    async def _answer_done(self, message: AnswerDone) -> None:
        turn = self.pending
        if turn is None or turn.id != message.turn:
            return
        self.pending = None
        answer = message.answer
        self.papers.update(message.papers)
        await turn.answer_view.finish(answer)
        self.answers.append(answer)
        self._save(answer)
        self._set_busy(False)
        await self.select_answer(turn.answer_view)
        for notice in answer.notices:
            self.notify(notice, title="Note", severity="warning", markup=False)

    @on(AnswerFailed)
    async def _answer_failed(self, message: AnswerFailed) -> None:
        turn = self.pending
        if turn is None or turn.id != message.turn:
            return
        await self._drop_turn(turn)
        self.notify(message.error, title="Cannot answer", severity="error", timeout=10, markup=False)

    async def _drop_turn(self, turn: Turn) -> None:
        """Take an unfinished question off the conversation and give it back to the input."""
        self.pending = None
        await turn.question_view.remove()
        await turn.answer_view.remove()
        self._set_busy(False)
        self.prompt.restore(turn.question)
        self.prompt.focus()

    def _set_busy(self, busy: bool) -> None:
        self.prompt.set_busy(busy)
        self.refresh_bindings()

    def _save(self, answer: Answer) -> None:
        if self.chat is None:
            self.chat = self.store.new(answer.question)
            self.sub_title = self.chat.title
        self.chat.answers = list(self.answers)
        try:
            self.store.save(self.chat)
        except OSError as exc:
            self.notify(f"cannot save the chat in {self.store.folder}: {exc.strerror}", title="Chat", severity="error")

    # --- widget messages --------------------------------------------------------------------
    @on(PromptInput.Submitted)
    async def ask(self, event: PromptInput.Submitted) -> None:
        """Send a question (a follow-up of the answers of this chat)."""
        if self.generating:
            self.notify("an answer is still streaming; Esc cancels it", severity="warning")
            return
        try:
            clean_question(event.text)
        except RagError as exc:
            self.notify(str(exc), title="Cannot ask", severity="error")
            return
        question = event.text.strip()
        self.prompt.clear()
        self._turns += 1
        question_view, answer_view = await self.conversation.add_turn(question)
        turn = Turn(self._turns, question, question_view, answer_view)
        self.pending = turn
        self._set_busy(True)
        turn.worker = self.run_answer(turn.id, question, list(self.answers))

    @on(AnswerView.Selected)
    async def _answer_selected(self, event: AnswerView.Selected) -> None:
        await self.select_answer(event.view)

    async def select_answer(self, view: AnswerView | None) -> None:
        for other in self.conversation.answer_views:
            other.select(other is view)
        self.selected = view
        answer = view.answer if view is not None else None
        await self.sources.show(answer, self.papers)
        self.status.show_answer(answer)

    @on(SourceCard.Opened)
    def _source_opened(self, event: SourceCard.Opened) -> None:
        self.push_screen(PaperScreen(event.citation, self.papers.get(event.citation.paper_id), event.claims))

    # --- actions ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.generating  # the footer shows Esc only while an answer streams
        return True

    async def action_cancel(self) -> None:
        """Stop the running answer and put the question back in the input."""
        turn = self.pending
        if turn is None:
            return
        stream = self._stream
        if stream is not None:
            stream.cancel()  # the model stops at its next token
        if turn.worker is not None:
            turn.worker.cancel()
        await self._drop_turn(turn)
        self.notify("the answer was cancelled; the question is back in the input", title="Cancelled")

    async def action_new_chat(self) -> None:
        if self.generating:
            await self.action_cancel()
        self.chat, self.answers, self.selected = None, [], None
        self.sub_title = ""
        await self.conversation.reset()
        await self.select_answer(None)
        self.prompt.clear()
        self.prompt.focus()

    def action_open_chat(self) -> None:
        chats = self.store.list()
        if not chats:
            self.notify(f"no saved chats in {self.store.folder}", title="Open chat", severity="warning")
            return
        options = [
            Option(f"{c.title or '(untitled)'}  ·  {len(c.answers)} question{'s' if len(c.answers) != 1 else ''}"
                   f"  ·  {c.updated:%Y-%m-%d %H:%M}", id=c.id)
            for c in chats
        ]
        self.push_screen(ChoiceScreen("Open a saved chat", options), self._open_chat_chosen)

    async def _open_chat_chosen(self, chat_id: str | None) -> None:
        if chat_id is not None:
            await self.open_chat(chat_id)

    async def open_chat(self, chat_id: str) -> None:
        """Show a saved chat; new questions continue it (its answers are the history)."""
        try:
            chat = self.store.load(chat_id)
        except (OSError, ValidationError, ValueError) as exc:
            self.notify(f"cannot read chat {chat_id}: {str(exc).splitlines()[0][:150]}", title="Open chat", severity="error")
            return
        await self.action_new_chat()
        self.chat, self.answers = chat, list(chat.answers)
        self.sub_title = chat.title
        last = None
        for answer in chat.answers:
            _, last = await self.conversation.add_turn(answer.question, answer)
        await self.select_answer(last)
        missing = sorted({c.paper_id for a in chat.answers for c in a.citations} - set(self.papers))
        if missing:
            self.load_papers(missing)

    def action_switch_model(self) -> None:
        try:
            statuses = self.assistant.models.status()
        except RagError as exc:
            self.notify(str(exc), title="Models", severity="error")
            return
        current = self.status.model
        usable = ("ready", "installed")
        options = [
            Option(
                f"{'● ' if m.name == current else '  '}{m.name}{' (default)' if m.default else ''}  ·  {m.state}",
                id=m.name, disabled=not m.state.startswith(usable),
            )
            for m in statuses
        ]
        self.push_screen(ChoiceScreen("Switch model", options), self._model_chosen)

    def _model_chosen(self, name: str | None) -> None:
        if name is None or name == self.status.model and self.status.model_state == "ready":
            return
        if self.generating:
            self.notify("wait for the answer (or Esc) before switching the model", severity="warning")
            return
        self.run_switch_model(name)

    def copy_text(self, answer: Answer) -> str:
        """The answer as plain text with its references."""
        lines = [f"Q: {answer.question}", "", answer.text]
        if answer.citations:
            lines += ["", "References:"]
            for c in answer.citations:
                paper = self.papers.get(c.paper_id)
                where = []
                if paper is not None:
                    where = [s for s in ([", ".join(paper.authors[:3])] if paper.authors else [])]
                    where += [str(paper.year)] if paper.year else []
                    where += [paper.url or paper.source]
                lines.append(f"[{c.key}] {c.title}" + (f" ({'; '.join(where)})" if where else ""))
        return "\n".join(lines)

    def action_copy_answer(self) -> None:
        view = self.selected
        if view is None or view.answer is None:
            self.notify("no answer to copy yet", severity="warning")
            return
        self.copy_to_clipboard(self.copy_text(view.answer))
        n = len(view.answer.citations)
        self.notify(f"answer copied with {n} reference{'s' if n != 1 else ''}", title="Copied")

    def _start_ingest(self, paths: list[str] | None, rebuild: bool, label: str) -> None:
        if any(w.group == "index" and w.is_running for w in self.workers):
            self.notify("an ingest is already running; see the progress bar", severity="warning")
            return
        self.run_ingest(paths, rebuild, label)

    def action_reingest(self) -> None:
        self._start_ingest(None, False, "Re-ingesting the bundled corpus")

    def action_rebuild(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._start_ingest(None, True, "Rebuilding the index")

        self.push_screen(ConfirmScreen(
            "Rebuild the index from scratch? It is wiped and the bundled corpus is embedded again "
            "(about a minute); papers ingested from other files must be ingested again."
        ), confirmed)

    def action_ingest_path(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self._start_ingest([str(Path(path).expanduser())], False, f"Ingesting {path}")

        self.push_screen(PathScreen(), chosen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(KEYS))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("New chat", "Start an empty conversation (Ctrl+N)", self.action_new_chat)
        yield SystemCommand("Open saved chat", "Reopen a conversation saved in the data dir (Ctrl+O)", self.action_open_chat)
        yield SystemCommand("Switch model", "Choose the language model from models.txt (F2)", self.action_switch_model)
        yield SystemCommand("Copy answer", "Copy the selected answer with its references (F3)", self.action_copy_answer)
        yield SystemCommand("Re-ingest corpus", "Index the bundled corpus again; unchanged papers are skipped (F5)",
                            self.action_reingest)
        yield SystemCommand("Rebuild index", "Wipe the index and embed the bundled corpus again (F6)", self.action_rebuild)
        yield SystemCommand("Ingest file or folder", "Add papers from a .txt/.jsonl/.json/.bib/.csv file or a folder",
                            self.action_ingest_path)
        yield SystemCommand("Keys", "Show the keys (F1 or ?)", self.action_help)
        for command in super().get_system_commands(screen):
            if command.title != "Keys":  # ours lists the chat's keys
                yield command


def make_app(settings: Settings | None = None, assistant: Assistant | None = None) -> ChatApp:
    """The chat app, for `rag chat` (settings) and for tests (an Assistant with a scripted model)."""
    if assistant is None:
        return ChatApp(Assistant(settings or Settings.load()), owns_assistant=True)
    return ChatApp(assistant)
