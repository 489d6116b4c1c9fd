"""The sources panel: the papers the selected answer cites, with the cited sentence highlighted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from rag import Answer, Citation, Paper
from rag.chunking import split_sentences
from rag.citations import content_words, parse_keys, split_answer
from rag.safety import terminal_safe

HIGHLIGHT = "bold $text-accent on $accent 20%"


def claims_citing(answer: Answer, key: int) -> list[str]:
    """The sentences of the answer that cite [key]."""
    return [s for s in split_answer(answer.text) if key in parse_keys(s)]


def cited_span(passage: str, claims: list[str]) -> tuple[int, int] | None:
    """Where, in `passage`, the sentence that best matches the claims is (display only)."""
    words = set().union(*(content_words(c) for c in claims)) if claims else set()
    if not words:
        return None
    best, best_score, position = None, 0, 0
    for sentence in split_sentences(passage):
        start = passage.find(sentence, position)
        if start < 0:
            continue
        position = start + len(sentence)
        score = len(words & content_words(sentence))
        if score > best_score:
            best, best_score = (start, position), score
    return best


def highlighted(text: str, claims: list[str], style: str = HIGHLIGHT) -> Content:
    span = cited_span(text, claims)
    if span is None:
        return Content(text)
    start, end = span
    return Content.assemble(text[:start], (text[start:end], style), text[end:])


def describe_source(paper: Paper | None) -> str:
    if paper is None:
        return ""
    parts = [Path(paper.source).name]
    if len(paper.sources) > 1:
        parts[0] += f" (+{len(paper.sources) - 1} more)"
    if paper.year:
        parts.append(str(paper.year))
    return " · ".join(parts)


class SourceCard(Static, can_focus=True):
    """One cited paper; Enter or a click opens the full abstract."""

    DEFAULT_CSS = """
    SourceCard {
        height: auto;
        margin: 0 0 1 0;
        padding: 0 1;
        border-left: outer $accent 50%;
    }
    SourceCard:focus { border-left: outer $accent; background: $boost; }
    """

    BINDINGS = [Binding("enter", "open", "Open abstract", show=False)]

    @dataclass
    class Opened(Message):
        citation: Citation
        claims: list[str]

    def __init__(self, citation: Citation, paper: Paper | None, claims: list[str]) -> None:
        self.citation, self.paper, self.claims = citation, paper, claims
        source = terminal_safe(describe_source(paper))  # corpus text: no escapes (Content is never markup)
        body = Content.assemble(
            (f"[{citation.key}] {terminal_safe(citation.title)}", "bold"), "\n",
            *(((source, "$text-muted italic"), "\n") if source else ()),
            highlighted(terminal_safe(citation.text), claims),
        )
        super().__init__(body)

    def action_open(self) -> None:
        self.post_message(self.Opened(self.citation, self.claims))

    def on_click(self) -> None:
        self.focus()
        self.action_open()


class SourcesPanel(VerticalScroll):
    """Lists the citations of one answer."""

    DEFAULT_CSS = """
    SourcesPanel {
        width: 42%;
        min-width: 30;
        border: round $accent 40%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    SourcesPanel:focus-within { border: round $accent; }
    SourcesPanel > .hint { color: $text-muted; }
    SourcesPanel > .refused { color: $text-warning; }
    """

    def on_mount(self) -> None:
        self.border_title = "Sources"
        self.mount(Static("The sources of the selected answer appear here.", classes="hint"))

    async def show(self, answer: Answer | None, papers: dict[str, Paper]) -> None:
        await self.remove_children()
        if answer is None:
            self.border_title = "Sources"
            await self.mount(Static("The sources of the selected answer appear here.", classes="hint"))
            return
        if answer.refused or not answer.citations:
            self.border_title = "Sources: none"
            reason = f" ({answer.refusal_reason})" if answer.refusal_reason else ""
            await self.mount(Static(
                f"No sources: the corpus does not answer this question{reason}.", classes="refused", markup=False,
            ))
            return
        self.border_title = f"Sources ({len(answer.citations)})"
        await self.mount_all([
            SourceCard(c, papers.get(c.paper_id), claims_citing(answer, c.key)) for c in answer.citations
        ])
        self.scroll_home(animate=False)

    @property
    def cards(self) -> list[SourceCard]:
        return list(self.query(SourceCard))
