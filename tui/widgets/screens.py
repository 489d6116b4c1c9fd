"""Modal screens: keys, a paper's abstract, saved chats, models, confirmations and a path prompt."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from rag import Citation, Paper
from rag.safety import terminal_safe

from .sources import highlighted

MODAL_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: 90; max-width: 95%; height: auto; max-height: 90%;
    border: round $accent; background: $surface; padding: 1 2;
}}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} .hint {{ color: $text-muted; margin-top: 1; }}
"""


class HelpScreen(ModalScreen[None]):
    """The keys (F1 or ?)."""

    DEFAULT_CSS = MODAL_CSS.format(name="HelpScreen")
    BINDINGS = [Binding("escape,q,f1,question_mark,enter", "dismiss", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self):
        width = max(len(k) for k, _ in self.keys) + 2
        lines = Content("\n").join(
            Content.assemble((key.ljust(width), "bold $accent"), text) for key, text in self.keys
        )
        with Vertical():
            yield Label("Keys", classes="title")
            yield Static(lines)
            yield Label("Esc closes", classes="hint")


class PaperScreen(ModalScreen[None]):
    """The full abstract of a cited paper, with the cited sentence highlighted."""

    DEFAULT_CSS = MODAL_CSS.format(name="PaperScreen") + """
    PaperScreen VerticalScroll { height: auto; max-height: 30; }
    PaperScreen .meta { color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, citation: Citation, paper: Paper | None, claims: list[str]) -> None:
        super().__init__()
        self.citation, self.paper, self.claims = citation, paper, claims

    def compose(self):
        paper = self.paper
        with Vertical():
            yield Label(Content(terminal_safe(f"[{self.citation.key}] {self.citation.title}")), classes="title")
            if paper is not None:
                meta = []
                if paper.authors:
                    meta.append(", ".join(paper.authors[:6]) + (" et al." if len(paper.authors) > 6 else ""))
                if paper.year:
                    meta.append(str(paper.year))
                meta.append("sources: " + ", ".join(paper.sources))
                if paper.url:
                    meta.append(paper.url)
                yield Static(Content(terminal_safe("\n".join(meta))), classes="meta")
            with VerticalScroll():
                if paper is None:
                    yield Static(Content.assemble(
                        ("The paper is no longer in the index; the passage the answer cited:\n\n", "$text-warning"),
                        highlighted(terminal_safe(self.citation.text), self.claims),
                    ))
                else:
                    yield Static(highlighted(terminal_safe(paper.abstract), self.claims), id="abstract")
            yield Label("Esc closes", classes="hint")


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one option; dismisses with its id (None on Escape)."""

    DEFAULT_CSS = MODAL_CSS.format(name="ChoiceScreen") + """
    ChoiceScreen OptionList { height: auto; max-height: 24; border: none; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, title: str, options: list[Option], hint: str = "Enter selects · Esc closes") -> None:
        super().__init__()
        self.title_text, self.options, self.hint = title, options, hint

    def compose(self):
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield OptionList(*self.options)
            yield Label(self.hint, classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)


class ConfirmScreen(ModalScreen[bool]):
    """Yes (y/Enter) or no (n/Escape)."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmScreen")
    BINDINGS = [
        Binding("y,enter", "dismiss(True)", "Yes"),
        Binding("n,escape", "dismiss(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self):
        with Vertical():
            yield Static(self.question, markup=False)
            yield Label("y / Enter: yes · n / Esc: no", classes="hint")


class PathScreen(ModalScreen[str | None]):
    """Ask for a file or folder to ingest."""

    DEFAULT_CSS = MODAL_CSS.format(name="PathScreen")
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def compose(self):
        with Vertical():
            yield Label("Ingest a file or folder", classes="title")
            yield Input(placeholder="path to .txt, .jsonl, .json, .bib, .csv or a folder")
            yield Label("Enter ingests · Esc closes", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)
