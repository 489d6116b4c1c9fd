"""How the chat names a source: title, authors, year, the file's own name and line, the URL.

One place for the sources panel, the abstract view, F3 copies and Markdown exports. The data is
the library's (`Citation`, `Paper`); the only thing the chat works out itself is the line of a
paper in its file, because the catalog records the file but not the line (`SourceLocator`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rag import (
    BUNDLED_CORPUS,
    BUNDLED_PREFIX,
    Answer,
    Citation,
    Paper,
    author_names,
    normalise_text,
    split_sentences,
)

MAX_SCAN_BYTES = 64 << 20  # a bigger file (an arXiv snapshot) is named without its line


class SourceLocator:
    """Finds the line of a paper in the file it was read from (cached per file; call it off the UI thread)."""

    def __init__(self) -> None:
        self._lines: dict[Path, list[str] | None] = {}

    @staticmethod
    def path_of(source: str) -> Path:
        if source.startswith(BUNDLED_PREFIX):
            return BUNDLED_CORPUS / source[len(BUNDLED_PREFIX) :]
        return Path(source)

    def _normalised_lines(self, path: Path) -> list[str] | None:
        if path not in self._lines:
            try:
                if path.stat().st_size > MAX_SCAN_BYTES:
                    raise OSError("too big to scan")
                text = path.read_text(encoding="utf-8-sig", errors="replace")
                self._lines[path] = [normalise_text(line) for line in text.split("\n")]
            except OSError:
                self._lines[path] = None
        return self._lines[path]

    def line_of(self, paper: Paper) -> int | None:
        lines = self._normalised_lines(self.path_of(paper.source))
        title = paper.title_key
        if not lines or not title:
            return None
        return next((number for number, line in enumerate(lines, start=1) if title in line), None)

    def locate(self, paper: Paper) -> str:
        """`file:line` as a person would look it up (the bundled pages by their number)."""
        line = self.line_of(paper)
        source = paper.source
        if source.startswith(BUNDLED_PREFIX):
            page = source[len(BUNDLED_PREFIX) :].split("_", 1)[0]
            where = f"bundled corpus, page {page}" + (f", line {line}" if line else "")
        else:
            where = Path(source).name + (f":{line}" if line else "")
        if len(paper.sources) > 1:
            where += f" (+{len(paper.sources) - 1} more)"
        return where

    def locate_all(self, papers: Iterable[Paper]) -> dict[str, str]:
        return {paper.paper_id: self.locate(paper) for paper in papers}


def source_line(paper: Paper | None, location: str | None) -> str:
    """The grey line under a source's title: authors · year · file:line · URL."""
    if paper is None:
        return location or ""
    parts = [
        author_names(paper.authors, 2),
        str(paper.year) if paper.year else "",
        location or Path(paper.source).name,
        paper.url or "",
    ]
    return " · ".join(p for p in parts if p)


def same_words(a: str, b: str) -> bool:
    """The same question, whatever its line breaks and spacing (the library searches it on one line)."""
    return a.split() == b.split()


def reference(citation: Citation, paper: Paper | None, location: str | None) -> str:
    """One reference line for copies and exports: `[n] Title. Authors (year). file:line. URL`."""
    out = f"[{citation.key}] {citation.title.rstrip('.')}."
    if paper is not None:
        who = author_names(paper.authors, 3)
        if who or paper.year:
            out += f" {who}{' ' if who and paper.year else ''}{f'({paper.year})' if paper.year else ''}."
        out += f" {location or Path(paper.source).name}."
        if paper.url:
            out += f" {paper.url}"
    return out


def answer_markdown(answer: Answer, papers: dict[str, Paper], locations: dict[str, str], level: int = 2) -> str:
    """A question, its answer and its references, as Markdown."""
    # A question of several lines: its first line is the heading, the others follow as typed.
    first, *more = answer.question.split("\n")
    lines = [f"{'#' * level} {first}", ""]
    if more:
        lines += ["  \n".join(line.rstrip() for line in more), ""]
    if answer.standalone_question and not same_words(answer.standalone_question, answer.question):
        lines += [f"*Searched as:* {answer.standalone_question}", ""]
    lines.append(answer.text)
    if answer.refused and answer.refusal_reason:
        lines += ["", f"*Why:* {answer.refusal_reason}"]
    for notice in answer.notices:
        lines += ["", f"*Note:* {notice}"]
    if answer.citations:
        lines += ["", "References:", ""]
        lines += [f"- {reference(c, papers.get(c.paper_id), locations.get(c.paper_id))}" for c in answer.citations]
    return "\n".join(lines)


def chat_markdown(
    title: str,
    answers: list[Answer],
    papers: dict[str, Paper],
    locations: dict[str, str],
    earlier: dict[int, list[Answer]] | None = None,
) -> str:
    """A chat as Markdown; `earlier` (by answer index) are answers written again since, each placed above
    the answer that replaced it, as the chat shows them."""
    body = [f"# {title or 'Chat'}", ""]
    for index, answer in enumerate(answers):
        for old in (earlier or {}).get(index, []):
            body += [
                answer_markdown(old, papers, locations).replace(
                    "\n", "\n\n*(an earlier answer, replaced by the next one)*\n", 1
                ),
                "",
            ]
        body += [answer_markdown(answer, papers, locations), ""]
    return "\n".join(body).rstrip() + "\n"


def passage_spans(text: str, passage: str) -> list[tuple[int, int]]:
    """Where the sentences of a cited passage (as shown to the model) are in `text` (exact matches only)."""
    start = text.find(passage)
    if passage and start >= 0:
        return [(start, start + len(passage))]
    spans = []
    for sentence in split_sentences(passage):
        start = text.find(sentence)
        if start >= 0:
            spans.append((start, start + len(sentence)))
    return sorted(spans)
