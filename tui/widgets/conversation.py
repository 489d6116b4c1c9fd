"""The conversation pane: questions and their answers, streamed in as Markdown."""

from __future__ import annotations

import time
from dataclasses import dataclass

from markdown_it import MarkdownIt
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Markdown, Static

from rag import Answer, terminal_safe

from ..keys import ANSWER_BINDINGS
from ..references import same_words
from ..timing import WallClock

WELCOME = (
    "Ask a question about the papers in the corpus. Answers cite their sources as [n]; "
    "the sources of the selected answer are listed beside (F8 shows or hides them).\n\n"
    "Enter sends · Ctrl+J new line · Esc stops an answer · F4 why? · Ctrl+P commands · F1 keys"
)


def answer_markdown() -> MarkdownIt:
    """Markdown without links, images, link references or raw HTML: an answer repeats corpus text,
    and "[code](http://...)" or "[1]: http://..." there must not hide a link target (shown as typed)."""
    return MarkdownIt("gfm-like").disable(
        ["link", "image", "autolink", "reference", "html_inline", "html_block", "linkify"], ignoreInvalid=True
    )


class QuestionView(Static):
    """What the user asked, what was searched (a follow-up is read with the conversation), and whether it was cut."""

    def __init__(self, question: str, cut_chars: int = 0) -> None:
        super().__init__()
        self.question = question
        self.cut_chars = cut_chars
        self.searched_as: str | None = None
        self._render_body()

    def _render_body(self) -> None:
        parts: list[Content | str | tuple[str, str]] = [self.question]
        if self.cut_chars:
            parts.append((f"\n✂ cut: the last {self.cut_chars:,} characters were not sent", "$text-warning"))
        if self.searched_as:
            parts.append((f"\n→ searched as: {self.searched_as}", "$text-muted italic"))
        self.update(Content.assemble(*parts))

    def show_searched_as(self, answer: Answer) -> None:
        standalone = answer.standalone_question
        self.searched_as = standalone if standalone and not same_words(standalone, answer.question) else None
        self._render_body()


class AnswerView(Vertical, can_focus=True):
    """One answer: queued, streaming (with its stage and timers), cited, refused. Focus selects it.

    Its keys (tui.keys.ANSWER_KEYS) move between answers and back to the input; any other printable
    key goes to the input (`ChatApp.on_key`).
    """

    BINDINGS = [Binding(key, action, show=False) for key, action in ANSWER_BINDINGS]

    @dataclass
    class Selected(Message):
        """The user selected this answer (its sources should be shown)."""

        view: AnswerView

    def __init__(self, question: str, answer: Answer | None = None) -> None:
        super().__init__()
        self.question = question
        self.answer: Answer | None = None
        self.clock: WallClock | None = None  # this session's wall-clock timings (None for reopened chats)
        self._initial = answer
        self._ticker: Timer | None = None
        self._stage = ""
        self._stage_started = time.monotonic()
        self._started = time.monotonic()

    def compose(self):
        markdown = Markdown("", parser_factory=answer_markdown, open_links=False)
        markdown.can_focus = False
        yield markdown
        # The model's text while its sentence is being written and checked (dim), and what was not shown.
        yield Static("", classes="draft", markup=False)
        yield Static("", classes="dropped", markup=False)
        yield Static("", classes="reason", markup=False)

    async def on_mount(self) -> None:
        for name in (".reason", ".draft", ".dropped"):
            self.query_one(name).display = False
        if self._initial is not None:
            await self.finish(self._initial)
        else:
            self.add_class("-streaming")
            self._ticker = self.set_interval(1.0, self._show_stage)
            self._show_stage()

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    @property
    def text(self) -> str:
        """The text shown so far."""
        return self.markdown.source

    @property
    def pending(self) -> bool:
        return self.answer is None

    @property
    def stage(self) -> str:
        return self._stage

    def stage_line(self) -> str:
        """`stage 3s (total 12s)`: the running stage with its own timer, and the time since sent."""
        now = time.monotonic()
        stage, total = now - self._stage_started, now - self._started
        if abs(total - stage) < 0.5:
            return f"{self._stage} {stage:.0f}s"
        return f"{self._stage} {stage:.0f}s (total {total:.0f}s)"

    def _show_stage(self) -> None:
        if self.answer is None:
            self.border_title = self.stage_line()

    def start_clock(self, started: float) -> None:
        self._started = started

    def set_stage(self, stage: str, since: float | None = None) -> None:
        """What the answer is doing now; its timer restarts."""
        if self.answer is None and stage != self._stage:
            self._stage = stage
            self._stage_started = since if since is not None else time.monotonic()
            self.set_class(stage.startswith("queued"), "-queued")
            self._show_stage()

    async def append(self, piece: str) -> None:
        await self.markdown.append(terminal_safe(piece))

    def show_draft(self, pending: str, dropped: str | None = None) -> None:
        """The unchecked text (dim, replaced by the verified sentence or removed), and a note per dropped one."""
        draft = self.query_one(".draft", Static)
        draft.update(terminal_safe(pending.strip()))
        draft.display = bool(pending.strip())
        if dropped:
            notes = self.query_one(".dropped", Static)
            notes.update("\n".join(filter(None, [str(notes.render()).strip(), terminal_safe(dropped)])))
            notes.display = True

    async def finish(self, answer: Answer, clock: WallClock | None = None) -> None:
        self.answer, self.clock = answer, clock
        if self._ticker is not None:
            self._ticker.stop()
        self.remove_class("-streaming", "-queued")
        for name in (".draft", ".dropped"):  # F4 (why?) keeps the dropped sentences and their reasons
            self.query_one(name).display = False
        await self.markdown.update(terminal_safe(answer.text))
        reason = self.query_one(".reason", Static)
        notes = [f"Note: {n}" for n in answer.notices]
        if answer.refused:
            self.add_class("-refused")
            self.border_title = "no answer from the corpus"
            self.border_subtitle = "F4: why?"
            reason.update("\n".join([f"Why: {answer.refusal_reason or 'not recorded'}", *notes]))
            reason.display = True
        else:
            self.add_class("-cited")
            n = len(answer.citations)
            self.border_title = "answer"
            self.border_subtitle = f"{n} source{'s' if n != 1 else ''}" + (f" · {answer.model}" if answer.model else "")
            reason.update("\n".join(notes))
            reason.display = bool(notes)

    def select(self, selected: bool) -> None:
        self.set_class(selected, "-selected")

    def supersede(self, note: str) -> None:
        """An earlier answer kept on screen beside the one that replaced it (Ctrl+R)."""
        self.add_class("-superseded")
        self.border_title = note

    def on_focus(self) -> None:
        self.post_message(self.Selected(self))

    def on_click(self) -> None:
        self.focus()


class Conversation(VerticalScroll):
    """The questions and answers of one chat, newest at the bottom."""

    def compose(self):
        yield Static(WELCOME, id="welcome", markup=False)

    def on_mount(self) -> None:
        self.anchor()

    async def add_turn(
        self, question: str, answer: Answer | None = None, cut_chars: int = 0, after: AnswerView | None = None
    ) -> tuple[QuestionView, AnswerView]:
        """A question and its answer, at the bottom or right `after` an answer (resent in place)."""
        self.query("#welcome").remove()
        question_view = QuestionView(question, cut_chars)
        if answer is not None:
            question_view.show_searched_as(answer)
        views = question_view, AnswerView(question, answer)
        if after is not None and after.parent is self:
            await self.mount_all(views, after=after)
        else:
            await self.mount_all(views)
            self.anchor()
        return views

    async def reset(self) -> None:
        await self.remove_children()
        await self.mount(Static(WELCOME, id="welcome", markup=False))

    @property
    def answer_views(self) -> list[AnswerView]:
        return list(self.query(AnswerView))
