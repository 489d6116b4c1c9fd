"""The sources panel: the papers the selected answer cites, each with the passage the model was shown."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from rag import Answer, Citation, Paper, terminal_safe

from ..references import passage_spans, source_line

HIGHLIGHT = "bold $text-accent on $accent 20%"
HINT = "The sources of the selected answer appear here."


def highlighted(text: str, passage: str, style: str = HIGHLIGHT) -> Content:
    """`text` with the cited passage's sentences (as the library recorded them) highlighted; corpus
    text is shown without control characters or escape sequences."""
    text, passage = terminal_safe(text), terminal_safe(passage)
    pieces: list[str | tuple[str, str]] = []
    position = 0
    for start, end in passage_spans(text, passage):
        if start < position:
            continue
        pieces += [text[position:start], (text[start:end], style)]
        position = end
    pieces.append(text[position:])
    return Content.assemble(*pieces)


class SourceCard(Static, can_focus=True):
    """One cited paper; Enter or a click opens the full abstract."""

    BINDINGS = [Binding("enter", "open", "Open abstract", show=False)]

    @dataclass
    class Opened(Message):
        citation: Citation

    def __init__(self, citation: Citation, paper: Paper | None, location: str | None) -> None:
        self.citation, self.paper, self.location = citation, paper, location
        meta = terminal_safe(source_line(paper, location))  # corpus text: no escapes (Content is never markup)
        body = Content.assemble(
            (f"[{citation.key}] {terminal_safe(citation.title)}", "bold"),
            "\n",
            *(((meta, "$text-muted italic"), "\n") if meta else ()),
            (terminal_safe(citation.text), HIGHLIGHT),
        )
        super().__init__(body)

    def action_open(self) -> None:
        self.post_message(self.Opened(self.citation))

    def on_click(self) -> None:
        self.focus()
        self.action_open()


class SourcesPanel(VerticalScroll):
    """Lists the citations of one answer (the passage each was shown to the model highlighted)."""

    def on_mount(self) -> None:
        self.border_title = "Sources"
        self.mount(Static(HINT, classes="hint"))

    async def show(
        self, answer: Answer | None, papers: dict[str, Paper], locations: dict[str, str], pending: str | None = None
    ) -> None:
        await self.remove_children()
        if answer is None:
            self.border_title = "Sources"
            await self.mount(Static(pending or HINT, classes="hint", markup=False))
            return
        if answer.refused or not answer.citations:
            self.border_title = "Sources: none"
            await self.mount(
                Static(
                    "No sources: the corpus does not answer this question. F4 shows why.",
                    classes="refused",
                    markup=False,
                )
            )
            return
        self.border_title = f"Sources ({len(answer.citations)})"
        await self.mount_all(
            [SourceCard(c, papers.get(c.paper_id), locations.get(c.paper_id)) for c in answer.citations]
        )
        self.scroll_home(animate=False)

    @property
    def cards(self) -> list[SourceCard]:
        return list(self.query(SourceCard))
