"""Modal screens: keys, a paper's abstract, why an answer is what it is, the log, saved chats,
models, confirmations and one-line prompts. Every one scrolls: its body gets the height the
terminal has left (a 60x20 terminal included)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from rag import Answer, Citation, Paper, author_names, terminal_safe

from ..references import same_words, source_line
from ..store import ChatStore, SavedChat
from ..timing import LONG_LABELS, WallClock, breakdown, model_calls
from .prompt import SearchInput
from .sources import highlighted

CHROME_ROWS = 8  # border, padding, a title and a hint of one line each, and their margins
DIALOG_WIDTH = 96  # chat.tcss: Modal > .dialog


class Modal(ModalScreen):
    """A dialog: a title, a body that scrolls, a hint line."""

    TITLE_TEXT = ""
    HINT = "Esc closes"

    def __init__(self) -> None:
        super().__init__()

    def body(self) -> ComposeResult:
        yield from ()

    def title_text(self) -> str:
        return self.TITLE_TEXT

    def hint_text(self) -> str:
        return self.HINT

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text(), classes="title", markup=False)
            yield from self.scrolling()
            yield Static(self.hint_text(), classes="hint", markup=False)

    def scrolling(self) -> ComposeResult:
        """The part that scrolls (default: `body()` in a VerticalScroll)."""
        with VerticalScroll(classes="body fit"):
            yield from self.body()

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _chrome_rows(self) -> int:
        """Rows the dialog needs besides its body (a long title or hint wraps on a narrow screen)."""
        width = max(10, min(DIALOG_WIDTH, self.app.size.width) - 6)
        lines = sum(max(1, -(-len(text) // width)) for text in (self.title_text(), self.hint_text()))
        return CHROME_ROWS - 2 + lines

    def _fit(self) -> None:
        rows = max(3, self.app.size.height - 2 - self._chrome_rows())
        for widget in self.query(".fit"):
            widget.styles.max_height = rows

    @property
    def scroller(self) -> Widget:
        return self.query_one(".fit")


class HelpScreen(Modal):
    """The keys (F1)."""

    TITLE_TEXT = "Keys"
    BINDINGS = [Binding("escape,q,f1,question_mark,enter", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def body(self) -> ComposeResult:
        with Grid(classes="keys"):
            for key, text in self.rows:
                yield Label(key, classes="key", markup=False)
                yield Static(text, markup=False)


class PaperScreen(Modal):
    """The full abstract of a cited paper, the passage shown to the model highlighted."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, citation: Citation, paper: Paper | None, location: str | None) -> None:
        super().__init__()
        self.citation, self.paper, self.location = citation, paper, location

    def title_text(self) -> str:
        return terminal_safe(f"[{self.citation.key}] {self.citation.title}")

    def body(self) -> ComposeResult:
        paper = self.paper
        if paper is None:
            yield Static(
                Content.assemble(
                    ("The paper is no longer in the index; the passage the answer cited:\n\n", "$text-warning"),
                    highlighted(self.citation.text, self.citation.text),
                )
            )
            return
        meta = [source_line(paper, self.location)]
        if len(paper.authors) > 2:
            meta.append(author_names(paper.authors, len(paper.authors)))
        if len(paper.sources) > 1:
            meta.append("also in: " + ", ".join(paper.sources[1:]))
        yield Static(Content(terminal_safe("\n".join(meta))), classes="meta")
        yield Static(highlighted(paper.abstract, self.citation.text), id="abstract")


def _section(title: str) -> tuple[str, str]:
    return (f"\n{title}\n", "bold $accent")


class WhyScreen(Modal):
    """Why an answer is what it is: the question searched, the passages, the draft, what was dropped."""

    TITLE_TEXT = "Why this answer?"
    BINDINGS = [Binding("escape,q,f4,enter", "dismiss", "Close")]

    def __init__(self, answer: Answer, clock: WallClock | None = None) -> None:
        super().__init__()
        self.answer, self.clock = answer, clock

    def body(self) -> ComposeResult:
        a = self.answer
        parts: list[str | tuple[str, str] | Content] = [("Question: ", "bold"), a.question, "\n"]
        searched = a.standalone_question or a.question
        if not same_words(searched, a.question):
            parts += [("Searched as: ", "bold"), searched, " (the follow-up read with the chat's earlier answers)\n"]
        else:
            parts += [("Searched as: ", "bold"), "the question as asked\n"]
        if a.refused:
            parts += [
                ("Outcome: ", "bold"),
                ("no answer from the corpus", "$text-warning"),
                "\n",
                ("Reason: ", "bold"),
                a.refusal_reason or "not recorded",
                "\n",
            ]
        else:
            parts += [("Outcome: ", "bold"), f"{len(a.citations)} cited source(s)\n"]
        for notice in a.notices:
            parts += [("Note: ", "bold"), notice, "\n"]
        parts.append(_section("Passages shown to the model"))
        if a.passages:
            cited = {c.paper_id: c.key for c in a.citations}
            for p in a.passages:
                mark = f" (cited as [{cited[p.paper_id]}])" if p.paper_id in cited else " (not cited)"
                parts += [(f"[{p.key}] {p.title}", "bold"), (mark, "$text-muted"), "\n", p.text, "\n\n"]
        elif a.timings.first_token_s is None:
            parts.append("none: nothing retrieved was relevant enough, so the model was not asked\n")
        else:
            parts.append("not recorded (an answer saved by an older version)\n")
        if a.raw_text:
            parts.append(_section("What the model wrote" + (" (rejected)" if a.refused else "")))
            parts += [a.raw_text.strip(), "\n"]
        parts.append(_section("Sentences dropped by the citation checks"))
        if a.dropped_sentences:
            reasons = a.dropped_reasons + [""] * (len(a.dropped_sentences) - len(a.dropped_reasons))
            for sentence, reason in zip(a.dropped_sentences, reasons):
                parts += ["• ", sentence, "\n"]
                if reason:
                    parts += [("  ↳ " + reason, "$text-warning"), "\n"]
        else:
            parts.append("none\n")
        parts.append(_section("Time"))
        pieces, total = breakdown(a, self.clock)
        for label, seconds in pieces:
            parts.append(f"{seconds:7.2f} s  {LONG_LABELS.get(label, label)}\n")
        parts += [
            (
                f"{total:7.2f} s  {'total' if self.clock is None else 'wall time, from Enter to the answer shown'}",
                "bold",
            ),
            "\n",
            model_calls(a, self.clock),
            "\n",
        ]
        yield Static(Content.assemble(*parts))


@dataclass
class LogEntry:
    when: datetime
    title: str
    text: str
    severity: str = "information"


class LogScreen(Modal):
    """Everything the chat reported: ingest reports, skipped records (file:line: reason), errors."""

    TITLE_TEXT = "Log"
    BINDINGS = [Binding("escape,q,ctrl+l", "dismiss", "Close")]

    def __init__(self, entries: Iterable[LogEntry]) -> None:
        super().__init__()
        self.entries = list(entries)

    def body(self) -> ComposeResult:
        if not self.entries:
            yield Static("Nothing yet.", classes="meta")
            return
        styles = {"error": "$text-error", "warning": "$text-warning"}
        yield Static(
            Content("\n").join(
                Content.assemble(
                    (f"{e.when:%H:%M:%S} ", "$text-muted"),
                    (f"{e.title}: " if e.title else "", "bold"),
                    (e.text, styles.get(e.severity, "")),
                )
                for e in self.entries
            )
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.call_after_refresh(self.scroller.scroll_end, animate=False)


class ChoiceScreen(Modal):
    """Pick one option; dismisses with its id (None on Escape)."""

    HINT = "Enter selects · Esc closes"
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, title: str, options: list[Option], hint: str | None = None, current: str | None = None) -> None:
        super().__init__()
        self.title_value, self.options = title, options
        self.hint_value = hint or self.HINT
        self.current = current  # the id of the option highlighted at first (e.g. the model in use)

    def title_text(self) -> str:
        return self.title_value

    def hint_text(self) -> str:
        return self.hint_value

    def scrolling(self) -> ComposeResult:
        yield OptionList(*self.options, classes="fit")

    def on_mount(self) -> None:
        super().on_mount()
        if self.current is not None and any(o.id == self.current for o in self.options):
            options = self.query_one(OptionList)
            options.highlighted = options.get_option_index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)


def questions(n: int) -> str:
    return f"{n} question{'s' if n != 1 else ''}"


def chat_option(chat: SavedChat, current: str | None) -> Option:
    mark = "● " if chat.id == current else ""
    return Option(
        f"{mark}{chat.title or '(untitled)'}  ·  {questions(len(chat.answers))}  ·  {chat.updated:%Y-%m-%d %H:%M}",
        id=chat.id,
    )


class ChatsScreen(Modal):
    """Saved chats: type to search; Enter opens, F2 renames, F3 exports, F8 deletes."""

    TITLE_TEXT = "Saved chats"
    HINT = "type to search · Enter open · F2 rename · F3 export · F8 delete · Esc close"
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("f2", "rename", "Rename"),
        Binding("f3", "export", "Export"),
        Binding("f8", "delete", "Delete"),
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
    ]

    @dataclass
    class Changed(Message):
        """A chat was renamed (title) or deleted (title None)."""

        chat_id: str
        title: str | None

    @dataclass
    class ExportRequested(Message):
        chat_id: str

    def __init__(self, store: ChatStore, current: str | None = None, query: str = "") -> None:
        super().__init__()
        self.store, self.current, self.query_text = store, current, query

    def scrolling(self) -> ComposeResult:
        yield SearchInput(self.query_text, placeholder="search the titles, questions and answers", id="search")
        yield OptionList(classes="fit")

    def on_mount(self) -> None:
        super().on_mount()
        self.refresh_list()
        self.query_one(SearchInput).focus()

    def _fit(self) -> None:
        rows = max(3, self.app.size.height - 2 - self._chrome_rows() - 3)  # the search box takes 3
        for widget in self.query(".fit"):
            widget.styles.max_height = rows

    @property
    def options(self) -> OptionList:
        return self.query_one(OptionList)

    def refresh_list(self) -> None:
        query = self.query_one(SearchInput).value
        chats = self.store.list(query)
        options = self.options
        highlighted_id = self.highlighted_id
        options.clear_options()
        if chats:
            options.add_options([chat_option(c, self.current) for c in chats])
            ids = [c.id for c in chats]
            options.highlighted = ids.index(highlighted_id) if highlighted_id in ids else 0
        else:
            options.add_option(Option("no saved chat matches" if query else "no saved chats yet", disabled=True))

    @property
    def highlighted_id(self) -> str | None:
        options = self.options
        if options.highlighted is None or options.option_count == 0:
            return None
        option = options.get_option_at_index(options.highlighted)
        return None if option.disabled else option.id

    def on_input_changed(self, event: SearchInput.Changed) -> None:
        self.refresh_list()

    def on_input_submitted(self, event: SearchInput.Submitted) -> None:
        event.stop()
        if self.highlighted_id is not None:
            self.dismiss(self.highlighted_id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if not event.option.disabled:
            self.dismiss(event.option.id)

    def action_move(self, step: int) -> None:
        options = self.options
        if options.option_count:
            current = options.highlighted if options.highlighted is not None else 0
            options.highlighted = min(max(current + step, 0), options.option_count - 1)

    def action_rename(self) -> None:
        chat_id = self.highlighted_id
        if chat_id is None:
            return
        chat = self.store.load(chat_id)

        def renamed(title: str | None) -> None:
            if title:
                self.store.rename(chat_id, title)
                self.post_message(self.Changed(chat_id, title))
                self.refresh_list()

        self.app.push_screen(AskScreen("Rename chat", "the new title", chat.title), renamed)

    def action_delete(self) -> None:
        chat_id = self.highlighted_id
        if chat_id is None:
            return
        chat = self.store.load(chat_id)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.store.delete(chat_id)
                self.post_message(self.Changed(chat_id, None))
                self.refresh_list()

        self.app.push_screen(
            ConfirmScreen(f"Delete the chat “{chat.title}” ({questions(len(chat.answers))})?"), confirmed
        )

    def action_export(self) -> None:
        if self.highlighted_id is not None:
            self.post_message(self.ExportRequested(self.highlighted_id))


class ConfirmScreen(Modal):
    """Yes (y/Enter) or no (n/Escape)."""

    TITLE_TEXT = "Are you sure?"
    HINT = "y / Enter: yes · n / Esc: no"
    BINDINGS = [
        Binding("y,enter", "dismiss(True)", "Yes"),
        Binding("n,escape", "dismiss(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def body(self) -> ComposeResult:
        yield Static(self.question, markup=False)


class AskScreen(Modal):
    """One line of text (a path to ingest, a new title); dismisses with it, or None on Escape."""

    HINT = "Enter confirms · Esc closes"
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, title: str, placeholder: str, value: str = "") -> None:
        super().__init__()
        self.title_value, self.placeholder, self.value = title, placeholder, value

    def title_text(self) -> str:
        return self.title_value

    def body(self) -> ComposeResult:
        yield SearchInput(self.value, placeholder=self.placeholder, id="search")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(SearchInput).focus()

    def on_input_submitted(self, event: SearchInput.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)


class PathScreen(AskScreen):
    """Ask for a file or folder to ingest."""

    HINT = "Enter ingests · Esc closes"

    def __init__(self) -> None:
        super().__init__("Ingest a file or folder", "path to .txt, .jsonl, .json, .bib, .csv or a folder")
