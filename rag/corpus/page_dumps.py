"""The HF "daily papers" page dumps (.txt): titles and abstracts among the page's chrome."""

from __future__ import annotations

import re

from rag.corpus.records import MAX_TITLE_CHARS, MIN_ABSTRACT_WORDS, ReadResult, clean, make_paper

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"

# Page chrome of the "daily papers" dumps: never a title nor an abstract.
_CHROME = re.compile(
    rf"^(new|subscribe|byak and the research community|get trending papers in your email inbox.*"
    rf"|(?:{_MONTHS})[a-z]*\.? \d{{1,2}}(?:, \d{{4}})?|\d{{4}}-\d{{2}}-\d{{2}})$",
    re.IGNORECASE,
)

# One dump glues the "Subscribe" button to the first title ("SubscribeHLTCOE at LiveRAG ...").
_GLUED_CHROME = re.compile(r"^Subscribe(?=[A-Z0-9])")


def _looks_like_title(line: str) -> bool:
    return len(line) <= MAX_TITLE_CHARS and len(line.split()) <= 40


def _looks_like_abstract(line: str) -> bool:
    return len(line.split()) >= MIN_ABSTRACT_WORDS


def page_lines(text: str) -> list[str]:
    """Lines as an editor numbers them: split at \n only (str.splitlines also splits at U+2028,
    form feeds and other characters that JSON strings may hold)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_page_dump(text: str, source: str) -> ReadResult:
    """A "daily papers" page dump: chrome lines, then title and abstract lines (blank lines or not)."""
    result = ReadResult(files=1)
    lines: list[tuple[int, str, str]] = []
    for number, raw in enumerate(page_lines(text), start=1):
        line = _GLUED_CHROME.sub("", clean(raw))
        if line and not _CHROME.match(line):
            lines.append((number, line, raw))
    i = 0
    while i < len(lines):
        number, line, raw = lines[i]
        nxt = lines[i + 1][1] if i + 1 < len(lines) else None
        if _looks_like_title(line) and nxt is not None and _looks_like_abstract(nxt):
            make_paper(result, f"{source}:{number}", source, line, nxt, raw=[raw, lines[i + 1][2]])
            i += 2
            continue
        if _looks_like_title(line):
            result.problems.append(f"{source}:{number}: title without an abstract: {line[:60]!r}")
        else:
            result.problems.append(f"{source}:{number}: text without a title: {line[:60]!r}")
        i += 1
    return result
