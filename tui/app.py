"""`rag chat`: a Textual chat over `rag.Assistant` (answers stream in, sources at hand).

The app holds the keys (`tui.keys`), the command palette and the workers; the widgets in
`tui.widgets` post Message classes to it; saved chats and the rest of its files are `tui.store`.
Every question, model load and lookup goes through the `Assistant` API in a thread worker and
reports back with messages, so the UI never freezes and the input stays editable. The Assistant
runs one use at a time and tells a waiting one what it waits for (`Assistant.using`); an ingest runs
beside the answers, which keep coming from the committed index. No retrieval or prompt logic lives here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from textual import events, on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, TextArea
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from rag import (
    Answer,
    Assistant,
    Cancelled,
    DataDir,
    Paper,
    RagError,
    ServerClient,
    ServerError,
    Settings,
    clean_question,
)

from . import keys
from .clipboard import copy_out, tmux_buffer
from .references import SourceLocator, answer_markdown, chat_markdown, same_words
from .store import ChatSettings, ChatStore, PromptHistory, SavedChat, write_export
from .tasks import (
    AnswerDone,
    AnswerDraft,
    AnswerFailed,
    AnswerPiece,
    AnswerStage,
    CorpusChanged,
    IngestEnded,
    IngestStarted,
    IngestTask,
    ModelChanged,
    ModelLoadFailed,
    PapersLoaded,
    Problem,
    TaskAdvanced,
    TaskFinished,
    TaskStarted,
    Turn,
)
from .timing import WallClock
from .widgets import (
    AnswerView,
    AskScreen,
    ChatsScreen,
    ChoiceScreen,
    ConfirmScreen,
    Conversation,
    HelpScreen,
    LogEntry,
    LogScreen,
    PaperScreen,
    PathScreen,
    PromptInput,
    QuestionView,
    SourceCard,
    SourcesPanel,
    StatusLine,
    TaskBar,
    WhyScreen,
)
from .widgets.prompt import sent_length
from .widgets.screens import questions

NARROW = 100  # columns: below this the sources panel is hidden (F8 shows it instead of the chat)
SHORT = 30  # rows: below this the input grows less
JOURNAL_LIMIT = 2000  # log entries kept (Ctrl+L)
DRAFT_STILL = 0.4  # seconds a draft question stays unchanged before it is prepared (retrieval + prefill)
EARLIER = "earlier answer (replaced by the one below)"  # the title of an answer kept after Ctrl+R
HOLD_KEYS_S = 0.5  # the longest keys typed after an Esc wait for the dialog it closes


class DaemonThreads(ThreadPoolExecutor):
    """The event loop's executor for Textual's thread workers: one daemon thread per call, so that
    quitting does not wait for a call stuck in the model (asyncio's default pool joins its threads)."""

    _alive: set[threading.Thread] = set()

    @classmethod
    def running(cls) -> list[threading.Thread]:
        return [t for t in list(cls._alive) if t.is_alive()]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()

        def run() -> None:
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args, **kwargs))
                    except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
                        future.set_exception(exc)
            finally:
                DaemonThreads._alive.discard(threading.current_thread())

        thread = threading.Thread(target=run, name="chat-worker", daemon=True)
        DaemonThreads._alive.add(thread)
        thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to join: the threads are daemons (asyncio calls this when the loop closes)."""


class MainArea(Horizontal):
    """The chat column and the sources panel; its size decides whether the panel fits (`ChatApp.relayout`)."""

    def on_resize(self) -> None:
        self.app.relayout()  # type: ignore[attr-defined]


class ChatApp(App[None]):
    """The chat. Build it with `make_app(settings, assistant)`."""

    TITLE = "rag chat"
    CSS_PATH = "chat.tcss"
    BINDINGS = keys.bindings()

    def __init__(
        self,
        assistant: Assistant,
        *,
        owns_assistant: bool = False,
        question: str | None = None,
        server: ServerClient | None = None,
    ):
        super().__init__()
        self.assistant = assistant
        # A running `rag serve` of the same data dir writes the answers (its model is loaded already);
        # everything else (index, papers, ingest) stays with `assistant`. Switching models drops it.
        self.server = server
        self.owns_assistant = owns_assistant
        home = assistant.settings.home
        self.store = ChatStore(DataDir(home).chats)
        self.history = PromptHistory(DataDir(home).chat_history)
        self.chat: SavedChat | None = None
        self.answers: list[Answer] = []  # this chat's answers: the history of follow-ups
        self.earlier: dict[int, list[Answer]] = {}  # answers replaced by Ctrl+R, kept dimmed (`SavedChat.earlier`)
        self.papers: dict[str, Paper] = {}  # cited papers seen so far (for sources and copies)
        self.locations: dict[str, str] = {}  # paper id -> "file:line" as a person would look it up
        self.selected: AnswerView | None = None
        # The selection follows the newest question (sent, queued or answered) until the user picks an
        # earlier answer; sending a question or G (the latest answer) makes it follow again.
        self.follow_latest = True
        self.editing: int | None = None  # the index in `answers` of the question being edited in the input
        self.running: Turn | None = None
        self.queue: list[Turn] = []
        self.ingest_task: IngestTask | None = None
        self.journal: list[LogEntry] = []
        self.locator = SourceLocator()
        # F8 hides or shows the panel beside the chat when wide; when narrow it shows the panel instead
        # of the chat, until F8 again, a printable key (it goes to the input) or any change of width.
        self.sources_beside = True
        self.sources_only = False
        self._layout_width = 0
        self.initial_question = question
        self._turns = 0
        self._draft_timer: Timer | None = None
        self._draft_cancel = threading.Event()  # set: the draft's preparation in flight stops at its next step
        self._closing_dialog: Screen | None = None  # the dialog an Esc closes: keys typed meanwhile wait (`on_event`)
        self._held_keys: list[events.Key] = []
        self._hold_timer: Timer | None = None

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the chat; on quit, do not wait for a worker stuck in the model (a prefill cannot be
        interrupted: Ctrl+Q during an answer took 2-11 s). The workers run in daemon threads, and a
        process whose worker is still in the model ends at once once the terminal is restored
        (answers, chats and the question history are written as they happen; an ingest resumes)."""
        loop = asyncio.new_event_loop()
        loop.set_default_executor(DaemonThreads())
        try:
            return super().run(*args, loop=loop, **kwargs)
        finally:
            if DaemonThreads.running() and not kwargs.get("headless"):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(self.return_code or 0)
            loop.close()

    # --- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with MainArea(id="main"):
            with Vertical(id="chat"):
                yield Conversation()
                yield TaskBar()
                yield PromptInput(self.history.items)
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
    def task_bar(self) -> TaskBar:
        return self.query_one(TaskBar)

    @property
    def generating(self) -> bool:
        return self.running is not None

    @property
    def home(self) -> Path:
        return self.assistant.settings.home

    def on_mount(self) -> None:
        status = self.status
        if self.server is not None:
            status.model, status.model_state = self.server.model, f"rag serve at {self.server.url}"
        else:
            try:
                status.model = self.assistant.model_name
            except RagError:
                status.model = self.assistant.settings.models.model or "?"
            status.model_state = "ready" if self.assistant.model_loaded else "not loaded"
        self.prompt.focus()
        self.relayout()
        self.screen_change_signal.subscribe(self, self._release_keys)
        self.set_interval(1.0, self._tick)
        self.prepare()
        if self.initial_question:
            self.prompt.post_message(PromptInput.Submitted(self.prompt, self.initial_question))

    def on_unmount(self) -> None:
        self._cancel_draft()
        if self.ingest_task is not None:
            self.ingest_task.cancel.set()
        for turn in [self.running, *self.queue]:
            if turn is not None and turn.stream is not None:
                turn.stream.cancel()
        if self.server is not None:
            self.server.close()
        if self.owns_assistant:
            # A prefill cannot be interrupted: do not wait for it (the process ends without it, see `run`).
            deadline = time.monotonic() + (0.5 if self.running is not None else 5)
            try:
                with self.assistant.using("closing", lambda: time.monotonic() > deadline):
                    self.assistant.close()
            except Cancelled:
                pass

    def relayout(self) -> None:
        """Below NARROW columns the sources panel gives way to the chat and the input (F8 shows it
        instead of them, until the width changes); the input shrinks when the screen is short."""
        width, height = self.size
        if width != self._layout_width:
            self._layout_width = width
            self.sources_only = False
        main = self.query_one("#main")
        narrow = width < NARROW
        shown = self.sources_only if narrow else self.sources_beside
        main.set_class(narrow, "-narrow")
        footer = self.query_one(Footer)
        footer.compact = narrow  # every key of the footer fits in 60 columns
        footer.show_command_palette = width >= NARROW  # Ctrl+P is in the help (F1)
        main.set_class(height < SHORT, "-short")
        main.set_class(not shown, "-sources-hidden")
        main.set_class(shown and narrow, "-sources-only")
        self.sources.border_subtitle = "F8: back to the chat" if shown and narrow else ""
        focused = self.screen.focused if self.screen is self.screen_stack[0] else None
        if not shown and focused is not None and self.sources in focused.ancestors_with_self:
            self.prompt.focus()
        elif shown and narrow and (focused is None or self.sources not in focused.ancestors_with_self):
            self.sources.focus()

    # --- copying ------------------------------------------------------------------------------
    def copy_quietly(self, text: str) -> bool:
        """OSC 52 and, inside tmux, tmux's paste buffer (True if tmux took it); `copy_out` says the rest."""
        super().copy_to_clipboard(text)
        return tmux_buffer(text)

    def copy_to_clipboard(self, text: str) -> None:
        """Text selected with the mouse (inside an answer too), copied with Ctrl+C: also into tmux's
        paste buffer, and said."""
        in_tmux = self.copy_quietly(text)
        where = "tmux's paste buffer and OSC 52" if in_tmux else "the terminal clipboard (OSC 52)"
        self.tell(f"{len(text):,} characters copied to {where}", "Copy", timeout=4)

    # --- keys typed right after Esc closes a dialog ------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        """Keys typed right after the Esc that closes a dialog reach what is under it. They were lost
        two ways: keys in one burst with the Esc reached the App before the dialog had handled the Esc,
        went to the dialog and closed with it; and Esc then a key within 100 ms is what a terminal sends
        for Alt+key, so Textual read "Esc, h" typed fast as Alt+H, which no dialog takes (the dialog
        stayed open). In a dialog, Alt+key is read as Esc then the key (nothing there uses Alt); keys
        after an Esc that closes a dialog wait until it is gone (at most `HOLD_KEYS_S`)."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._esc_then_key(event):
                for key in (events.Key("escape", "\x1b"), events.Key(event.key.removeprefix("alt+"), event.character)):
                    await self.on_event(key)
                return
            if self._closing_dialog is not None and self.screen is self._closing_dialog:
                self._held_keys.append(event)
                return
            if event.key == "escape" and not self._on_main_screen and self._closing_dialog is None:
                self._closing_dialog = self.screen
                self._hold_timer = self.set_timer(HOLD_KEYS_S, self._release_keys)  # an Esc that closes nothing
        await super().on_event(event)

    def _esc_then_key(self, event: events.Key) -> bool:
        """Esc and a printable key sent together (read as Alt+key) while a dialog is open."""
        return (
            event.key.startswith("alt+")
            and event.character is not None
            and len(event.character) == 1
            and event.character.isprintable()
            and not self._on_main_screen
        )

    def _release_keys(self, _screen: Screen | None = None) -> None:
        """The dialog closed (or did not, in time): the held keys go on, in order, to what is on top;
        a second Esc in the burst is dropped (it would stop an answer the user did not mean to)."""
        if self._closing_dialog is None:
            return
        held, self._held_keys, self._closing_dialog = self._held_keys, [], None
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        for key in held:
            if key.key != "escape":
                self.post_message(events.Key(key.key, key.character))

    # --- focus: typing always reaches the input; Tab goes input -> answer -> its sources -> input --
    @property
    def _on_main_screen(self) -> bool:
        return self.screen is self.screen_stack[0]

    def on_key(self, event: events.Key) -> None:
        """A printable key typed where no text box takes it (an answer, a source, nothing focused, the
        sources shown instead of the chat) goes to the input, unless it is a key of what has the focus."""
        if not self._on_main_screen or not event.is_printable or not event.character:
            return
        if isinstance(self.screen.focused, (TextArea, Input)) or event.key in self.screen.active_bindings:
            return
        event.stop()
        event.prevent_default()
        self.action_focus_input()
        self.prompt.insert(event.character)

    def _focus_ring(self) -> list[Widget]:
        """What Tab goes through on the chat's screen: the input, the focused or selected answer
        (the latest one by default), the sources of the selected answer (when shown)."""
        main = self.query_one("#main")
        ring: list[Widget] = []
        if not main.has_class("-sources-only"):
            focused = self.screen.focused
            views = self.conversation.answer_views
            answer = focused if isinstance(focused, AnswerView) else (self.selected or (views[-1] if views else None))
            ring += [self.prompt, *([answer] if answer is not None else [])]
        if not main.has_class("-sources-hidden"):
            ring += self.sources.cards
        return ring

    def _cycle_focus(self, step: int) -> None:
        ring = self._focus_ring()
        if not ring:
            return
        focused = self.screen.focused
        index = ring.index(focused) + step if focused in ring else (0 if step > 0 else -1)
        ring[index % len(ring)].focus()

    def action_focus_next(self) -> None:
        if self._on_main_screen:
            self._cycle_focus(+1)
        else:
            super().action_focus_next()

    def action_focus_previous(self) -> None:
        if self._on_main_screen:
            self._cycle_focus(-1)
        else:
            super().action_focus_previous()

    def action_focus_input(self) -> None:
        if self.sources_only:
            self.sources_only = False
            self.relayout()
        self.prompt.focus()

    def _focus_answer(self, view: AnswerView) -> None:
        view.focus()  # selects it (AnswerView.Selected) and scrolls it into view

    def action_answer(self, step: int) -> None:
        """The answer before (-1) or after (+1) the focused one."""
        views = self.conversation.answer_views
        focused = self.screen.focused
        if not views or not isinstance(focused, AnswerView) or focused not in views:
            return
        index = views.index(focused) + step
        if 0 <= index < len(views):
            self._focus_answer(views[index])

    def action_latest_answer(self) -> None:
        views = self.conversation.answer_views
        if views:
            self._focus_answer(views[-1])
            self.conversation.scroll_end(animate=False)

    def action_first_answer(self) -> None:
        views = self.conversation.answer_views
        if views:
            self._focus_answer(views[0])

    @on(PromptInput.ScrollChat)
    def _scroll_chat(self, message: PromptInput.ScrollChat) -> None:
        try:
            getattr(self.conversation, f"action_{message.action}")()
        except SkipAction:  # nothing to scroll (a short chat)
            pass

    def _tick(self) -> None:
        """Once a second: the running stage's timer in the status line."""
        view = self.selected
        if view is not None and view.pending and view.is_attached:
            self.status.show_stage(view.stage_line())

    # --- log and notifications ----------------------------------------------------------------
    def tell(self, message: str, title: str = "", severity: str = "information", timeout: float | None = None) -> None:
        """A notification that is also kept in the log (Ctrl+L)."""
        self.journal.append(LogEntry(datetime.now(), title, message, severity))
        del self.journal[:-JOURNAL_LIMIT]
        self.notify(
            message,
            title=title,
            severity=severity,  # type: ignore[arg-type]
            timeout=timeout or (10 if severity == "error" else 6),
            markup=False,
        )

    # --- workers ----------------------------------------------------------------------------
    def _progress(self, cancelled: Callable[[], bool], labels: dict[str, str]) -> Callable[[str, int, int], None]:
        """A progress(stage, advance, total) callback for the Assistant: drives the TaskBar, raises
        `Cancelled` when the task is to stop (the ingest then stops before its next batch)."""
        seen: set[str] = set()

        def update(stage: str, advance: int, total: int) -> None:
            if cancelled():
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
        task = IngestTask("First run: indexing the bundled corpus", rebuild=False)
        cancelled = lambda: worker.is_cancelled or task.cancel.is_set()  # noqa: E731
        try:
            with self.assistant.using("the start-up", cancelled) as holding:
                try:
                    if not self.assistant.index.exists() and not self.assistant.first_run:
                        self.assistant.ensure_index()  # a lost index: says what it held (no other papers)
                    if not self.assistant.index.exists():
                        holding.label = "the first-run index build"
                        self.post_message(IngestStarted(task))
                        self.post_message(TaskStarted(f"{task.label} (Esc stops it)"))
                        try:
                            self.assistant.ensure_index(
                                self._progress(cancelled, {"embed": f"{task.label} (Esc stops it)"}),
                                on_wait=lambda why: self.post_message(TaskStarted(why)),
                            )
                            self.post_message(Problem("the bundled corpus is indexed", "Index", "information"))
                        except Cancelled:
                            self.post_message(
                                Problem("the first-run index build was stopped; F5 finishes it", "Index", "warning")
                            )
                        finally:
                            self.post_message(IngestEnded(task, None, False, None))
                    self.post_message(CorpusChanged(self.assistant.stats().papers))
                except Exception as exc:  # noqa: BLE001 - a broken index must not end the app
                    self.post_message(self._problem(exc, "Index"))
                finally:
                    self.post_message(TaskFinished())
                if self.server is None:  # a server's model is loaded already
                    holding.label = f"the model {self._model_label()} to load"
                    self._load_model(cancelled)
        except Cancelled:
            pass
        finally:
            self.post_message(TaskFinished())

    def _model_label(self, name: str | None = None) -> str:
        try:
            return name or self.assistant.model_name
        except RagError:
            return name or self.assistant.settings.models.model or "?"

    def _load_model(self, cancelled: Callable[[], bool], notify: bool = True, name: str | None = None) -> str | None:
        """Load (assembling it on first use) the configured model, or switch to `name`; called with
        the assistant held. A model that fails to load leaves the previous one in place.

        Returns the error message if it could not be loaded.
        """
        label = self._model_label(name)
        self.post_message(ModelChanged(label, "loading…"))
        self.post_message(TaskStarted(f"Loading model {label}"))
        progress = self._progress(cancelled, {"assemble": f"Assembling {label} from its packages (first use)"})
        try:
            generator = self.assistant.set_model(name, progress) if name else self.assistant.load(progress)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - a model that fails to load must not end the app
            self.post_message(
                ModelChanged(self._model_label(), "ready" if self.assistant.model_loaded else "not loaded")
            )
            problem = self._problem(exc, "Model")
            if notify:
                self.post_message(problem)
            return problem.message
        else:
            self.post_message(ModelChanged(generator.name, "ready"))
            return None
        finally:
            self.post_message(TaskFinished())

    # --- preparing the draft while it is typed ----------------------------------------------------
    @on(TextArea.Changed, "PromptInput")
    def _draft_changed(self) -> None:
        """A keystroke: prepare the new draft once it is still. The prefill in flight goes on until
        then: the next draft mostly retrieves the same passages, whose prompt it keeps (measured in
        benchmarks/prefill_typing.py: stopping it at every keystroke gave 0.73x the time to first
        token of no prefill, letting it run 0.59x)."""
        if self._draft_timer is not None:
            self._draft_timer.stop()
            self._draft_timer = None
        if self.assistant.settings.answer.prefill_while_typing:
            self._draft_timer = self.set_timer(DRAFT_STILL, self._draft_still)

    def _cancel_draft(self) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
            self._draft_timer = None
        self._draft_cancel.set()

    def _draft_still(self) -> None:
        self._draft_timer = None
        try:
            draft = self.prompt.text
        except NoMatches:  # the app is closing: its widgets are gone before a pending timer is
            return
        # Never while an answer is written or waits (it needs the model), nor before the model is ready.
        if not draft.strip() or self.generating or self.queue or not self.assistant.model_loaded:
            return
        self._draft_cancel.set()  # the previous draft's preparation stops at its next step
        self._draft_cancel = threading.Event()
        self.prepare_draft(draft, list(self.answers), self._draft_cancel)

    @work(thread=True, group="draft", exit_on_error=False)
    def prepare_draft(self, draft: str, history: list[Answer], cancel: threading.Event) -> None:
        """Retrieve for the draft and prefill the model's prompt up to the question, so that Enter
        only leaves the question to evaluate; a newer still draft or Enter stops it between two steps."""
        try:
            self.assistant.prepare(draft, history, cancel)  # gives up when an answer starts
        except Exception:  # noqa: BLE001 - stopped, or a draft's problem: it shows when the question is sent
            pass

    @work(thread=True, group="answer")
    def run_answer(self, turn: Turn, history: list[Answer]) -> None:
        worker = get_current_worker()
        clock = turn.clock

        def stage(text: str) -> None:
            self.post_message(AnswerStage(turn.id, text))

        try:
            with self.assistant.using("an answer being written", lambda: worker.is_cancelled, stage) as holding:
                turn.holding = holding
                clock.gate = time.monotonic()
                server = self.server
                if server is None and not self.assistant.model_loaded:  # not loaded yet, or failed: try again, visibly
                    label = self._model_label()
                    stage(f"loading model {label}")
                    holding.label = f"the model {label} to load"
                    error = self._load_model(lambda: worker.is_cancelled, notify=False)
                    if error is not None:
                        raise ModelLoadFailed(error)
                    holding.label = "an answer being written"
                clock.loaded = time.monotonic()
                clock.stream_start = time.monotonic()
                # The question as typed: the library cuts it to its limit and says so in the answer's notices.
                if server is None:  # it says "searching", then "reading the passages"
                    stream = self.assistant.stream(turn.typed, history=history, on_stage=stage)
                else:  # the server reports nothing before the first token
                    stage(f"searching → reading the passages (at {server.url})")
                    stream = server.stream(turn.typed, history=history)
                turn.stream = stream
                first, pending = True, ""
                for event in stream.events():
                    if worker.is_cancelled:
                        stream.cancel()
                        return
                    if first and event.kind != "done":
                        stage("writing (dim until checked)")
                        first = False
                    if event.kind == "token":
                        pending += event.text
                        self.post_message(AnswerDraft(turn.id, pending))
                    elif event.kind == "sentence":
                        pending = event.pending
                        self.post_message(AnswerPiece(turn.id, event.text))
                        self.post_message(AnswerDraft(turn.id, pending))
                    elif event.kind == "dropped":
                        pending = event.pending
                        self.post_message(AnswerDraft(turn.id, pending, f"not shown: {event.reason}"))
                if stream.cancelled or worker.is_cancelled:
                    return
                answer = stream.answer
                if answer is None:
                    raise RuntimeError("the answer stream ended without an answer")
                stage("fetching the sources")
                ids = [c.paper_id for c in answer.citations]
                papers = self.assistant.get_papers(ids) if ids else {}
            locations = self.locator.locate_all(papers.values())
            if not worker.is_cancelled:
                self.post_message(AnswerDone(turn.id, answer, papers, locations))
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
            if not worker.is_cancelled:
                down = isinstance(exc, ServerError) and self.server is not None
                self.post_message(AnswerFailed(turn.id, self._problem(exc, "").message, down))

    @work(thread=True, group="ingest")
    def run_ingest(self, task: IngestTask, paths: list[str] | None) -> None:
        """An ingest (or rebuild) that can be stopped; answers keep coming from the committed index."""
        worker = get_current_worker()
        cancelled = lambda: worker.is_cancelled or task.cancel.is_set()  # noqa: E731
        label = f"{task.label} (Esc or Ctrl+C stops it)"
        report, papers, error, stopped = None, None, None, False
        self.post_message(TaskStarted(label))
        progress = self._progress(cancelled, {"embed": label})
        on_wait = lambda why: self.post_message(TaskStarted(why))  # noqa: E731
        try:
            try:  # beside the answers: they keep coming from the committed index
                report = self.assistant.ingest(paths, rebuild=task.rebuild, progress=progress, on_wait=on_wait)
            finally:
                papers = self._papers_now()
        except Cancelled:
            stopped = True
        except Exception as exc:  # noqa: BLE001
            error = self._problem(exc, task.label).message
        finally:
            self.post_message(TaskFinished())
            self.post_message(IngestEnded(task, report, stopped, papers, error))

    def _papers_now(self) -> int | None:
        try:
            return self.assistant.paper_count()  # never waits for an answer
        except Exception:  # noqa: BLE001 - a count for the status line only
            return None

    @work(thread=True, group="model")
    def run_switch_model(self, name: str, remember: bool = True) -> None:
        """Load model `name` (F2: remembered for the next start; a reopened chat's: not)."""
        worker = get_current_worker()
        try:
            with self.assistant.using(f"the switch to model {name}", lambda: worker.is_cancelled):
                if self.server is not None:  # it serves one model: another one is loaded here
                    if remember:  # F2 (a reopened chat's notice says it already)
                        self.post_message(
                            Problem(
                                f"answers come from this process now, not the rag server at {self.server.url}",
                                "Model",
                                "information",
                            )
                        )
                    self.server.close()
                    self.server = None
                error = self._load_model(lambda: worker.is_cancelled, name=name)
            if error is None and remember:
                try:
                    ChatSettings(model=name).save(DataDir(self.home).chat_settings)
                except OSError as exc:
                    self.post_message(
                        Problem(f"cannot remember the model choice: {exc.strerror or exc}", "Model", "warning")
                    )
        except Cancelled:
            pass

    def _fetch_papers(self, worker: Worker, ids: list[str]) -> tuple[dict[str, Paper], dict[str, str]]:
        with self.assistant.using("a look-up of papers", lambda: worker.is_cancelled):
            papers = self.assistant.get_papers(ids) if ids else {}
        return papers, self.locator.locate_all(papers.values())

    @work(thread=True, group="papers")
    def load_papers(self, ids: list[str]) -> None:
        worker = get_current_worker()
        try:
            self.post_message(PapersLoaded(*self._fetch_papers(worker, ids)))
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001
            self.post_message(self._problem(exc, "Sources"))

    @work(thread=True, group="export")
    def export_chat_file(self, chat: SavedChat) -> None:
        worker = get_current_worker()
        every = [*chat.answers, *(a for old in chat.earlier.values() for a in old)]
        ids = sorted({c.paper_id for a in every for c in a.citations})
        try:
            papers, locations = self._fetch_papers(worker, [i for i in ids if i not in self.papers])
        except Cancelled:
            return
        except Exception:  # noqa: BLE001 - export what is known
            papers, locations = {}, {}
        papers, locations = {**self.papers, **papers}, {**self.locations, **locations}
        try:
            path = write_export(
                self.home, chat.id, chat_markdown(chat.title, chat.answers, papers, locations, chat.earlier)
            )
        except OSError as exc:
            self.post_message(Problem(f"cannot write {DataDir(self.home).exports}: {exc.strerror or exc}", "Export"))
            return
        self.post_message(Problem(f"“{chat.title}” written to {path}", "Export", "information"))

    # --- worker messages --------------------------------------------------------------------
    @on(TaskStarted)
    def _task_started(self, message: TaskStarted) -> None:
        self.task_bar.start(message.label, message.total)

    @on(TaskAdvanced)
    def _task_advanced(self, message: TaskAdvanced) -> None:
        self.task_bar.advance(message.advance, message.total)

    @on(TaskFinished)
    def _task_finished(self) -> None:
        if self.ingest_task is None:
            self.task_bar.finish()

    @on(ModelChanged)
    def _model_changed(self, message: ModelChanged) -> None:
        self.status.model, self.status.model_state = message.name, message.state

    @on(CorpusChanged)
    def _corpus_changed(self, message: CorpusChanged) -> None:
        self.status.papers = message.papers

    @on(Problem)
    def _problem_reported(self, message: Problem) -> None:
        self.tell(message.message, message.title, message.severity)

    @on(PapersLoaded)
    async def _papers_loaded(self, message: PapersLoaded) -> None:
        self.papers.update(message.papers)
        self.locations.update(message.locations)
        if self.selected is not None and not self.selected.pending:
            await self.sources.show(self.selected.answer, self.papers, self.locations)

    @on(IngestStarted)
    def _ingest_started(self, message: IngestStarted) -> None:
        self.ingest_task = message.task
        self.refresh_bindings()

    @on(IngestEnded)
    def _ingest_ended(self, message: IngestEnded) -> None:
        task = message.task
        if self.ingest_task is task:
            self.ingest_task = None
        self.task_bar.finish()
        self.refresh_bindings()
        if message.papers is not None:
            self.status.papers = message.papers
        held = f"; the index holds {message.papers} papers" if message.papers is not None else ""
        if message.error:
            self.tell(message.error, task.label, "error")
        elif message.cancelled:
            self.tell(
                f"stopped{held}: what was committed stays (64 papers a batch); running it again finishes the rest",
                task.label,
                "warning",
            )
        elif message.report is not None:
            report = message.report
            self.journal += [LogEntry(datetime.now(), "skipped", problem, "warning") for problem in report.problems]
            skipped = f", {len(report.problems)} records skipped (Ctrl+L lists them)" if report.problems else ""
            self.tell(
                f"{report.added} added, {report.replaced} replaced, {report.unchanged} unchanged{skipped} "
                f"({report.seconds:.1f}s)",
                task.label,
                "warning" if report.problems else "information",
            )

    @on(AnswerStage)
    def _answer_stage(self, message: AnswerStage) -> None:
        turn = self.running
        if turn is not None and turn.id == message.turn:
            turn.answer_view.set_stage(message.stage, message.since)
            if self.selected is turn.answer_view:
                self.status.show_stage(turn.answer_view.stage_line())

    @on(AnswerPiece)
    async def _answer_piece(self, message: AnswerPiece) -> None:
        turn = self.running
        if turn is None or turn.id != message.turn:
            return  # a cancelled answer still draining
        await turn.answer_view.append(message.text)

    @on(AnswerDraft)
    def _answer_draft(self, message: AnswerDraft) -> None:
        turn = self.running
        if turn is not None and turn.id == message.turn:
            turn.answer_view.show_draft(message.pending, message.dropped)

    @on(AnswerDone)
    async def _answer_done(self, message: AnswerDone) -> None:
        turn = self.running
        if turn is None or turn.id != message.turn:
            return
        self.running = None
        turn.clock.done = time.monotonic()
        answer = message.answer
        if "\n" in turn.question_view.question and same_words(answer.question, turn.question_view.question):
            answer = answer.model_copy(update={"question": turn.question_view.question})  # kept as typed
        self.papers.update(message.papers)
        self.locations.update(message.locations)
        turn.question_view.show_searched_as(answer)
        await turn.answer_view.finish(answer, turn.clock)
        if turn.replaces is not None and turn.replaces < len(self.answers):
            old = self.answers[turn.replaces]
            if turn.keep_old:  # answered again: both stay on screen (and saved), the new one is the chat's
                self.earlier.setdefault(turn.replaces, []).append(old)
                for view in self.conversation.answer_views:
                    if view.answer is old:
                        view.supersede(EARLIER)
                if old.text == answer.text:
                    turn.answer_view.border_subtitle = (
                        f"{turn.answer_view.border_subtitle or ''} · same text as the earlier answer"
                    )
            else:  # an edited question: its new answer takes the place of the old one (and of earlier ones)
                for replaced in [*self.earlier.pop(turn.replaces, []), old]:
                    await self._remove_views_of(replaced)
            self.answers[turn.replaces] = answer
        else:
            self.answers.append(answer)
        self._save()
        latest = self.conversation.answer_views[-1:]
        if self.selected is turn.answer_view or self.selected is None:
            await self.select_answer(turn.answer_view)
        elif self.follow_latest and latest:
            await self.select_answer(latest[0])  # the newest question, maybe still queued: what is in view
        for notice in answer.notices:
            self.tell(notice, "Note", "warning")
        self._start_next()

    @on(AnswerFailed)
    async def _answer_failed(self, message: AnswerFailed) -> None:
        turn = self.running
        if turn is None or turn.id != message.turn:
            return
        self.running = None
        await self._drop_turn(turn)
        self.tell(f"{message.error} ({self._give_back(turn)})", "Cannot answer", "error")
        self.status.show_stage(f"the last question failed: {message.error}")  # not the timings of an older answer
        if message.server_down and self.server is not None:
            self.status.model_state = f"rag serve at {self.server.url}: not answering"
            self._offer_in_process(turn, message.error)
        self._start_next()

    def _offer_in_process(self, turn: Turn, error: str) -> None:
        """The server stopped answering: offer to answer in this process, at once, without a restart."""
        server = self.server
        assert server is not None

        async def chosen(yes: bool | None) -> None:
            if not yes or self.server is not server:
                return
            self.server = None
            server.close()
            self.status.model, self.status.model_state = self._model_label(), "not loaded"
            self.tell("answers come from this process now; the model loads with the next question", "Model")
            if self.prompt.text.strip() == turn.typed.strip():
                self.prompt.clear()
                await self._send(turn.question, turn.typed)

        self.push_screen(
            ConfirmScreen(
                f"The rag server at {server.url} stopped answering ({error}). Answer in this process instead? "
                f"The model {self._model_label()} loads here (seconds to a minute), and the question is asked again."
            ),
            chosen,
        )

    async def _drop_turn(self, turn: Turn) -> None:
        """Take an unfinished question off the conversation."""
        await turn.question_view.remove()
        await turn.answer_view.remove()
        if turn.replaces is not None and turn.replaces < len(self.answers):
            for view in self.conversation.answer_views:
                if view.answer is self.answers[turn.replaces]:
                    view.remove_class("-superseded")
        if self.selected is turn.answer_view:
            views = [v for v in self.conversation.answer_views if not v.pending]
            await self.select_answer(views[-1] if views else None)
        self._set_busy()

    def _give_back(self, turn: Turn) -> str:
        """Put an unanswered question back in the input, unless the user is typing another one."""
        if not self.prompt.text.strip():
            self.prompt.restore(turn.typed)
            self.prompt.focus()
            return "the question is back in the input"
        return "your draft was kept; Up in the input brings the question back"

    async def _remove_views_of(self, answer: Answer) -> None:
        children = list(self.conversation.children)
        for index, view in enumerate(children):
            if isinstance(view, AnswerView) and view.answer is answer:
                await view.remove()
                if index > 0 and isinstance(children[index - 1], QuestionView):
                    await children[index - 1].remove()

    def _set_busy(self) -> None:
        self.prompt.set_busy(self.running is not None or bool(self.queue))
        self.refresh_bindings()

    def _save(self) -> None:
        if not self.answers:
            return
        if self.chat is None:
            self.chat = self.store.new(self.answers[0].question)
            self.sub_title = self.chat.title
        self.chat.answers = list(self.answers)
        self.chat.earlier = {i: list(old) for i, old in self.earlier.items() if i < len(self.answers)}
        try:
            self.store.save(self.chat)
        except OSError as exc:
            self.tell(f"cannot save the chat in {self.store.folder}: {exc.strerror}", "Chat", "error")

    # --- asking -----------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    async def ask(self, event: PromptInput.Submitted) -> None:
        """Send a question (a follow-up of the answers of this chat); it queues behind a running one."""
        try:
            question, cut = clean_question(event.text)
        except RagError as exc:
            self.tell(str(exc), "Cannot ask", "error")
            if not self.prompt.text:
                self.prompt.load_text(event.text)  # the input cleared on Enter: give the text back to edit
            return
        typed = event.text.strip()
        self._cancel_draft()  # the answer waits for at most one step of it
        self.history.add(typed)
        editing = self.editing
        if editing is not None:
            self._stop_editing()
        if editing is not None and editing >= len(self.answers):
            editing = None  # the chat changed under the edit: asked as a new question
        await self._send(question, typed, sent_length(event.text) - len(question) if cut else 0, replaces=editing)

    async def _send(
        self,
        question: str,
        typed: str,
        cut_chars: int = 0,
        replaces: int | None = None,
        keep_old: bool = False,
    ) -> Turn:
        """Ask `question`; with `replaces`, its answer takes the place of answer `replaces` (on screen
        right after it; with `keep_old` the earlier one stays, dimmed)."""
        self._turns += 1
        after = self._view_of(self.answers[replaces]) if replaces is not None else None
        if after is not None:
            after.add_class("-superseded")
        # Shown (and saved) as typed, lines included; the library searches it on one line.
        shown = question if cut_chars else typed
        question_view, answer_view = await self.conversation.add_turn(shown, cut_chars=cut_chars, after=after)
        turn = Turn(
            self._turns, question, typed, question_view, answer_view, WallClock(), replaces=replaces, keep_old=keep_old
        )
        answer_view.start_clock(turn.clock.sent)
        if self.running is None:
            self._run(turn)
        else:
            self.queue.append(turn)
            answer_view.set_stage(f"queued: sent when the answer above is done ({len(self.queue)} waiting)")
        self.follow_latest = True
        await self.select_answer(answer_view)
        self._set_busy()
        return turn

    def _run(self, turn: Turn) -> None:
        self.running = turn
        history = list(self.answers if turn.replaces is None else self.answers[: turn.replaces])
        turn.answer_view.set_stage("starting")
        turn.worker = self.run_answer(turn, history)

    def _start_next(self) -> None:
        if self.running is None and self.queue:
            self._run(self.queue.pop(0))
            for position, waiting in enumerate(self.queue, start=1):
                waiting.answer_view.set_stage(f"queued: sent when the answer above is done ({position} waiting)")
        self._set_busy()

    @on(AnswerView.Selected)
    async def _answer_selected(self, event: AnswerView.Selected) -> None:
        views = self.conversation.answer_views
        self.follow_latest = bool(views) and event.view is views[-1]
        await self.select_answer(event.view)

    async def select_answer(self, view: AnswerView | None) -> None:
        """Show `view`'s sources and stage or timings (F3 and F4 use it too), and scroll it into view."""
        for other in self.conversation.answer_views:
            other.select(other is view)
        self.selected = view
        if view is not None and view is not self.conversation.answer_views[-1]:
            self.conversation.scroll_to_widget(
                view, animate=False, top=view.outer_size.height > self.conversation.size.height
            )
        if view is not None and view.pending:
            await self.sources.show(
                None, self.papers, self.locations, pending="The sources appear when this answer is done."
            )
            self.status.show_stage(view.stage_line())
            return
        answer = view.answer if view is not None else None
        await self.sources.show(answer, self.papers, self.locations)
        self.status.show_answer(answer, view.clock if view is not None else None)

    @on(SourceCard.Opened)
    def _source_opened(self, event: SourceCard.Opened) -> None:
        paper_id = event.citation.paper_id
        self.push_screen(PaperScreen(event.citation, self.papers.get(paper_id), self.locations.get(paper_id)))

    # --- actions ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            if self.screen is not self.screen_stack[0]:
                return False  # a dialog or the palette is open: Esc is theirs
            return (
                self.running is not None or bool(self.queue) or self.editing is not None or self.ingest_task is not None
            )
        return True

    async def action_cancel(self) -> None:
        """Stop the running answer (its question comes back), or else the running ingest."""
        turn = self.running
        if turn is not None:
            where = await self._cancel_running()
            self.tell(f"the answer was stopped; {where}", "Cancelled")
            self._start_next()
            return
        if self.queue:
            turn = self.queue.pop()
            await self._drop_turn(turn)
            self.tell(f"the queued question was not sent; {self._give_back(turn)}", "Cancelled")
            return
        if self.editing is not None:
            self._stop_editing()
            self.prompt.clear()
            return
        if self.ingest_task is not None:
            self.ingest_task.cancel.set()
            self.task_bar.relabel(f"{self.ingest_task.label}: stopping before its next batch…")

    async def _cancel_running(self) -> str:
        turn = self.running
        assert turn is not None
        if turn.stream is not None:
            turn.stream.cancel()  # the model stops at its next token
        if turn.worker is not None:
            turn.worker.cancel()
        if turn.holding is not None:
            turn.holding.label = "the stopped answer to end (the model stops at its next token)"
        self.running = None
        await self._drop_turn(turn)
        return self._give_back(turn)

    async def action_new_chat(self) -> None:
        notes = []
        if self.running is not None:
            notes.append(f"the unfinished answer was stopped; {await self._cancel_running()}")
        if self.queue:
            dropped, self.queue = self.queue, []
            for turn in dropped:
                await self._drop_turn(turn)
            notes.append(f"{len(dropped)} queued question(s) were not sent (Up in the input brings them back)")
        self.chat, self.answers, self.selected, self.follow_latest = None, [], None, True
        self.earlier = {}
        if self.editing is not None:
            self._stop_editing()
        self.sub_title = ""
        await self.conversation.reset()
        await self.select_answer(None)
        self._set_busy()
        self.prompt.focus()
        if notes:
            self.tell("; ".join(notes), "New chat", "warning")

    def action_chats(self, query: str = "") -> None:
        self.push_screen(ChatsScreen(self.store, self.chat.id if self.chat else None, query), self._chat_chosen)

    def action_search_chats(self) -> None:
        self.action_chats()

    async def _chat_chosen(self, chat_id: str | None) -> None:
        if chat_id is not None:
            await self.open_chat(chat_id)

    @on(ChatsScreen.Changed)
    async def _chat_changed(self, message: ChatsScreen.Changed) -> None:
        if self.chat is None or message.chat_id != self.chat.id:
            return
        if message.title is None:  # the open chat was deleted
            self.chat = None
            self.sub_title = ""
            self.tell(
                "this chat was deleted; what is on screen is saved again as a new chat if you continue",
                "Chats",
                "warning",
            )
        else:
            self.chat.title = self.sub_title = message.title

    @on(ChatsScreen.ExportRequested)
    def _export_requested(self, message: ChatsScreen.ExportRequested) -> None:
        try:
            chat = self.store.load(message.chat_id)
        except (OSError, ValidationError, ValueError) as exc:
            self.tell(f"cannot read chat {message.chat_id}: {str(exc).splitlines()[0][:150]}", "Export", "error")
            return
        self.export_chat_file(chat)

    async def open_chat(self, chat_id: str) -> None:
        """Show a saved chat; new questions continue it (its answers are the history)."""
        try:
            chat = self.store.load(chat_id)
        except (OSError, ValidationError, ValueError) as exc:
            self.tell(f"cannot read chat {chat_id}: {str(exc).splitlines()[0][:150]}", "Open chat", "error")
            return
        await self.action_new_chat()
        self.chat, self.answers = chat, list(chat.answers)
        self.earlier = {i: list(old) for i, old in chat.earlier.items() if i < len(chat.answers)}
        self.sub_title = chat.title
        last = None
        for index, answer in enumerate(chat.answers):
            for old in self.earlier.get(index, []):
                _, view = await self.conversation.add_turn(old.question, old)
                view.supersede(EARLIER)
            _, last = await self.conversation.add_turn(answer.question, answer)
        await self.select_answer(last)
        missing = sorted({c.paper_id for a in chat.answers for c in a.citations} - set(self.papers))
        if missing:
            self.load_papers(missing)
        self._use_chat_model(chat)

    def _use_chat_model(self, chat: SavedChat) -> None:
        """Each chat keeps its model: the one its last answer came from is loaded again, in this
        process. With `rag serve`, a chat of the server's model goes on through the server; a chat of
        another model is answered here (a server serves one model), as after F2, and the chat says so."""
        wanted = next((a.model for a in reversed(chat.answers) if a.model), None)
        if wanted is None or wanted == self.status.model:
            return
        try:
            usable = {m.name for m in self.assistant.models.status() if m.state.startswith(("ready", "installed"))}
        except RagError:
            return
        server = self.server
        if wanted not in usable:
            now = f"the rag server's {server.model}" if server is not None else self.status.model
            self.tell(f"this chat's answers came from {wanted}, which is not installed here: {now} answers", "Model")
        elif server is not None:
            self.tell(
                f"this chat's answers came from {wanted}; the rag server at {server.url} serves {server.model}, "
                f"so {wanted} answers this chat in this process (it loads now)",
                "Model",
            )
            self.run_switch_model(wanted, remember=False)
        else:
            self.tell(f"this chat's answers came from {wanted}: loading it for this chat", "Model", timeout=4)
            self.run_switch_model(wanted, remember=False)

    def action_export_chat(self) -> None:
        if self.chat is None:
            self.tell("nothing to export yet: ask a question first", "Export", "warning")
            return
        self.export_chat_file(self.chat.model_copy())

    def action_rename_chat(self) -> None:
        chat = self.chat
        if chat is None:
            self.tell("this chat is not saved yet: ask a question first", "Rename", "warning")
            return

        def renamed(title: str | None) -> None:
            if title and self.chat is chat:
                chat.title = self.sub_title = " ".join(title.split())[:80]
                self._save()

        self.push_screen(AskScreen("Rename chat", "the new title", chat.title), renamed)

    def action_delete_chat(self) -> None:
        chat = self.chat
        if chat is None:
            self.tell("this chat is not saved yet", "Delete", "warning")
            return

        async def confirmed(yes: bool | None) -> None:
            if yes:
                self.store.delete(chat.id)
                await self.action_new_chat()
                self.tell(f"“{chat.title}” deleted", "Delete")

        self.push_screen(
            ConfirmScreen(f"Delete this chat, “{chat.title}” ({questions(len(chat.answers))})?"), confirmed
        )

    async def action_regenerate(self) -> None:
        if self.running is not None or self.queue:
            self.tell("wait for the answers in progress (Esc stops the current one)", "Answer again", "warning")
            return
        if not self.answers:
            self.tell("no answer to write again yet", "Answer again", "warning")
            return
        index = len(self.answers) - 1
        last = self.answers[index]
        await self._send(last.question, last.question, replaces=index, keep_old=True)

    def _view_of(self, answer: Answer) -> AnswerView | None:
        return next((v for v in self.conversation.answer_views if v.answer is answer), None)

    def action_edit_question(self) -> None:
        """Put the focused (or selected) answer's question in the input; Enter resends it in place."""
        focused = self.screen.focused
        view = focused if isinstance(focused, AnswerView) else self.selected
        index = next((i for i, a in enumerate(self.answers) if view is not None and a is view.answer), None)
        if view is None or index is None:
            self.tell("select an answered question first (Tab, or Up/Down on the answers)", "Edit", "warning")
            return
        self.editing = index
        self.prompt.restore(self.answers[index].question)
        self.prompt.border_title = f"editing question {index + 1}: Enter resends it in place · Esc stops editing"
        self.prompt.focus()
        self.refresh_bindings()

    def _stop_editing(self) -> None:
        self.editing = None
        self.prompt.border_title = ""
        self.refresh_bindings()

    def action_clear_chat(self) -> None:
        """Take every question and answer off this chat (it stays, with its title, for new questions)."""
        chat = self.chat
        if chat is None or self.running is not None or self.queue:
            why = "nothing to clear yet" if chat is None else "wait for the answers in progress (Esc stops them)"
            self.tell(why, "Clear chat", "warning")
            return

        async def confirmed(yes: bool | None) -> None:
            if yes and self.chat is chat:
                await self.action_new_chat()
                self.chat, self.sub_title = chat, chat.title
                chat.answers, chat.earlier = [], {}
                try:
                    self.store.save(chat)
                except OSError as exc:
                    self.tell(f"cannot save the chat in {self.store.folder}: {exc.strerror}", "Chat", "error")

        self.push_screen(
            ConfirmScreen(f"Clear “{chat.title}”: take its {questions(len(chat.answers))} off?"), confirmed
        )

    def action_switch_model(self) -> None:
        try:
            statuses = self.assistant.models.status()
        except RagError as exc:
            self.tell(str(exc), "Models", "error")
            return
        current = self.status.model
        usable = ("ready", "installed")
        options = [
            Option(
                f"{'● ' if m.name == current else '  '}{m.name}{' (default)' if m.default else ''}  ·  {m.state}",
                id=m.name,
                disabled=not m.state.startswith(usable),
            )
            for m in statuses
        ]
        self.push_screen(
            ChoiceScreen("Switch model (remembered for the next start)", options, current=current), self._model_chosen
        )

    def _model_chosen(self, name: str | None) -> None:
        if name is None or (name == self.status.model and self.status.model_state == "ready"):
            return
        if self.server is not None and name == self.server.model:  # the server already answers with it
            return
        if self.running is not None:
            self.tell("the model changes once the answer is done", "Model", "warning")
        self.run_switch_model(name)

    def action_copy_answer(self) -> None:
        view = self.selected
        if view is None or view.answer is None:
            self.tell("no answer to copy yet", "Copy", "warning")
            return
        answer = view.answer
        number = next((i for i, a in enumerate(self.answers, start=1) if a is answer), len(self.answers))
        name = f"{self.chat.id if self.chat else 'answer'}-{number}"
        copied = copy_out(self, answer_markdown(answer, self.papers, self.locations), self.home, name)
        self.tell(copied.message(), "Copy", "warning" if copied.error else "information", timeout=12)

    def action_why(self) -> None:
        view = self.selected
        if view is None:
            self.tell("select an answer first (Tab, or a click)", "Why?", "warning")
        elif view.answer is None:
            self.tell(f"this answer is still in progress: {view.stage_line()}", "Why?", "warning")
        else:
            self.push_screen(WhyScreen(view.answer, view.clock))

    async def action_toggle_sources(self) -> None:
        if self.size.width < NARROW:
            self.sources_only = not self.sources_only
            if not self.sources_only:
                self.prompt.focus()
        else:
            self.sources_beside = not self.sources_beside
            if not self.sources_beside:
                self.prompt.focus()
        self.relayout()

    def _start_ingest(self, paths: list[str] | None, rebuild: bool, label: str) -> None:
        if self.ingest_task is not None:
            self.tell("an ingest is already running; see the progress bar", "Ingest", "warning")
            return
        task = self.ingest_task = IngestTask(label, rebuild)
        self.refresh_bindings()
        self.run_ingest(task, paths)

    def action_reingest(self) -> None:
        self._start_ingest(None, False, "Re-ingesting the bundled corpus")

    def action_rebuild(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._start_ingest(None, True, "Rebuilding the index")

        self.push_screen(
            ConfirmScreen(
                "Rebuild the index? Every indexed paper is embedded again into a new index, which replaces the "
                "current one when it is complete (a few minutes for the bundled corpus); answers use the current one until then."
            ),
            confirmed,
        )

    def action_ingest_path(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self._start_ingest([str(Path(path).expanduser())], False, f"Ingesting {path}")

        self.push_screen(PathScreen(), chosen)

    def action_show_log(self) -> None:
        if not isinstance(self.screen, LogScreen):
            self.push_screen(LogScreen(self.journal))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(keys.help_rows()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for key in [*keys.APP_KEYS, *keys.COMMANDS]:
            if key.action == "cancel" and not self.check_action("cancel", ()):
                continue
            shortcut = f" ({key.display})" if key.display else ""
            yield SystemCommand(
                key.palette_title, key.help[:1].upper() + key.help[1:] + shortcut, partial(self.run_action, key.action)
            )
        for command in super().get_system_commands(screen):
            if command.title != "Keys":  # ours lists the chat's keys
                yield command


def chosen_model(settings: Settings) -> str | None:
    """The model the chat uses: `-m`/RAG_MODEL, else the one last chosen with F2 (None: the default)."""
    return settings.models.model or ChatSettings.load(settings.data_dir.chat_settings).model


def make_app(
    settings: Settings | None = None,
    assistant: Assistant | None = None,
    question: str | None = None,
    server: ServerClient | None = None,
) -> ChatApp:
    """The chat app, for `rag chat` (settings) and for tests (an Assistant with a scripted model).

    With settings that name no model (no `-m`, no RAG_MODEL), the model last chosen with F2 is used.
    With `server`, a running `rag serve` writes the answers.
    """
    if assistant is None:
        settings = settings or Settings.load()
        # The remembered choice is checked as RAG_MODEL is (chat-settings.json can be edited by hand).
        settings.set("model", chosen_model(settings), given_as=f"model in {settings.data_dir.chat_settings}")
        return ChatApp(Assistant(settings), owns_assistant=True, question=question, server=server)
    return ChatApp(assistant, question=question, server=server)
