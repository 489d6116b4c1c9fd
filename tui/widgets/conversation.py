"""The conversation pane: questions and their answers, streamed in as Markdown."""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from markdown_it import MarkdownIt
from textual.widgets import Markdown, Static

from rag import Answer
from rag.safety import terminal_safe

WELCOME = (
    "Ask a question about the papers in the corpus. Answers cite their sources as [n]; "
    "the sources of the selected answer are listed on the right.\n\n"
    "Enter sends · Shift+Enter / Ctrl+J new line · Esc cancels · Ctrl+P commands · F1 keys"
)


def answer_markdown() -> MarkdownIt:
    """Markdown without links, images, link references or raw HTML: an answer repeats corpus text,
    and "[code](http://...)" or "[1]: http://..." there must not hide a link target (shown as typed)."""
    return MarkdownIt("gfm-like").disable(
        ["link", "image", "autolink", "reference", "html_inline", "html_block", "linkify"], ignoreInvalid=True
    )


class QuestionView(Static):
    """What the user asked."""

    DEFAULT_CSS = """
    QuestionView {
        margin: 1 1 0 6;
        padding: 0 1;
        background: $primary 12%;
        border-left: outer $primary;
    }
    """

    def __init__(self, question: str) -> None:
        super().__init__(question, markup=False)
        self.question = question


class AnswerView(Vertical, can_focus=True):
    """One answer: streaming, cited, refused or cancelled. Focus (or a click) selects it."""

    DEFAULT_CSS = """
    AnswerView {
        height: auto;
        margin: 1 6 0 1;
        padding: 0 1;
        border: round $secondary 40%;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
    }
    AnswerView > Markdown { margin: 0; padding: 0; background: transparent; }
    AnswerView > Markdown > *:last-child { margin-bottom: 0; }
    AnswerView.-streaming { border: round $secondary; }
    AnswerView.-cited { border: round $accent 50%; }
    AnswerView.-cited.-selected { border: round $accent; border-title-color: $accent; }
    AnswerView.-refused { border: dashed $warning 40%; }
    AnswerView.-refused > Markdown { color: $text-muted; text-style: italic; }
    AnswerView.-refused.-selected { border: dashed $warning; border-title-color: $warning; }
    AnswerView:focus { background: $boost; }
    """

    BINDINGS = [Binding("c", "app.copy_answer", "Copy answer", show=False)]

    @dataclass
    class Selected(Message):
        """The user selected this answer (its sources should be shown)."""

        view: "AnswerView"

    def __init__(self, question: str, answer: Answer | None = None) -> None:
        super().__init__()
        self.question = question
        self.answer: Answer | None = None
        self._initial = answer
        self._ticker: Timer | None = None
        self._started = time.monotonic()
        self._stage = ""

    def compose(self):
        markdown = Markdown("", parser_factory=answer_markdown, open_links=False)
        markdown.can_focus = False
        yield markdown

    async def on_mount(self) -> None:
        if self._initial is not None:
            await self.finish(self._initial)
        else:
            self.add_class("-streaming")
            self._started = time.monotonic()
            self._stage = "searching and reading"
            self._show_elapsed()
            self._ticker = self.set_interval(1.0, self._show_elapsed)

    def _show_elapsed(self) -> None:
        """While the answer streams the border says what is happening and for how long."""
        if self.answer is None:
            self.border_title = f"{self._stage}… {time.monotonic() - self._started:.0f}s"

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    @property
    def text(self) -> str:
        """The text shown so far."""
        return self.markdown.source

    def set_stage(self, stage: str) -> None:
        """What the answer is waiting for (shown with the elapsed time until text arrives)."""
        if self.answer is None:
            self._stage = stage
            self._show_elapsed()

    async def append(self, piece: str) -> None:
        if self._stage != "answering":
            self._stage = "answering"
            self._show_elapsed()
        await self.markdown.append(terminal_safe(piece))

    async def finish(self, answer: Answer) -> None:
        self.answer = answer
        if self._ticker is not None:
            self._ticker.stop()
        self.remove_class("-streaming")
        await self.markdown.update(terminal_safe(answer.text))
        if answer.refused:
            self.add_class("-refused")
            self.border_title = "no answer from the corpus"
            self.border_subtitle = answer.refusal_reason or ""
        else:
            self.add_class("-cited")
            n = len(answer.citations)
            self.border_title = "answer"
            self.border_subtitle = f"{n} source{'s' if n != 1 else ''}" + (f" · {answer.model}" if answer.model else "")

    def select(self, selected: bool) -> None:
        self.set_class(selected, "-selected")

    def on_focus(self) -> None:
        if self.answer is not None:
            self.post_message(self.Selected(self))

    def on_click(self) -> None:
        self.focus()


class Conversation(VerticalScroll):
    """The questions and answers of one chat, newest at the bottom."""

    DEFAULT_CSS = """
    Conversation { height: 1fr; padding: 0 0 1 0; }
    Conversation > #welcome { color: $text-muted; margin: 1 2; }
    """

    def compose(self):
        yield Static(WELCOME, id="welcome", markup=False)

    def on_mount(self) -> None:
        self.anchor()

    async def add_turn(self, question: str, answer: Answer | None = None) -> tuple[QuestionView, AnswerView]:
        self.query("#welcome").remove()
        views = QuestionView(question), AnswerView(question, answer)
        await self.mount_all(views)
        self.anchor()
        return views

    async def reset(self) -> None:
        await self.remove_children()
        await self.mount(Static(WELCOME, id="welcome", markup=False))

    @property
    def answer_views(self) -> list[AnswerView]:
        return list(self.query(AnswerView))
