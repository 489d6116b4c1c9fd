"""What every corpus reader shares: the result of a read (papers, problems, where each came from),
the category filter, and a `Paper` made from a record's fields after cleaning them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from rag.safety import has_controls, strip_controls
from rag.types import Paper

MAX_TITLE_CHARS = 400
MIN_ABSTRACT_WORDS = 12
MAX_FIELD_CHARS = 100_000


@dataclass
class ReadResult:
    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: int = 0
    sanitized: int = 0  # papers whose fields held control characters or escape sequences (removed)
    where: list[str] = field(default_factory=list)  # `file:line` of each paper, in step with `papers`
    done: float = 1.0  # the share of the input's bytes read once this (piece of a) result was read

    def extend(self, other: ReadResult) -> None:
        self.papers.extend(other.papers)
        self.problems.extend(other.problems)
        self.files += other.files
        self.sanitized += other.sanitized
        self.where.extend(other.where)


@dataclass
class ReadTotals:
    """What a streamed read added up to, without the papers: counts, problems, the sources seen."""

    files: int = 0
    papers: int = 0
    sanitized: int = 0
    left_out: int = 0  # papers read that were not in the categories asked for
    problems: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)


class CategoryFilter:
    """Papers in any of the given categories or their subcategories: "cs.CL" takes cs.CL, "cs" takes
    cs.CL, cs.LG, ... (arXiv's `archive.subject` names; compared without regard to case). No
    categories: every paper."""

    def __init__(self, categories: Iterable[str] = ()):
        self.categories = list(dict.fromkeys(c.strip() for c in categories if c.strip()))
        self._exact = {c.lower() for c in self.categories}
        self._prefixes = tuple(c.lower() + "." for c in self.categories)

    def __bool__(self) -> bool:
        return bool(self.categories)

    def __str__(self) -> str:
        return ", ".join(self.categories)

    def __call__(self, paper: Paper) -> bool:
        if not self.categories:
            return True
        return any(c.lower() in self._exact or c.lower().startswith(self._prefixes) for c in paper.categories)


def clean(text: str) -> str:
    """One line of text: whitespace collapsed; NULs, stray BOMs, terminal escape sequences and
    other control characters removed (corpus text is shown in terminals: see rag.safety)."""
    if _UNCLEAN.search(text):  # rare: one scan decides (the full clean-up is 3 more passes)
        text = strip_controls(text.replace("\x00", " ").replace("\ufeff", ""), keep_newlines=False)
    return " ".join(text.split())  # str.split() splits at the same whitespace as \s, several times faster


# Anything `clean` must remove besides whitespace: controls other than \t \n \r, DEL and C1, bidi
# overrides, lone surrogates, the BOM.
_UNCLEAN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufeff]")


def _dirty(values: Iterable[object]) -> bool:
    """Does any of these raw field values (strings or lists of strings) hold control characters?"""
    for value in values:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and has_controls(item.replace("\x00", "")) for item in items):
            return True
    return False


def make_paper(
    result: ReadResult, where: str, source: str, title: object, abstract: object, raw: Iterable[object] = (), **extra
) -> None:
    """Add the paper, or a problem `where: reason`; `raw` are the record's other raw field values
    (only looked at to count records that held control characters)."""
    if not isinstance(title, str) or not clean(title):
        result.problems.append(f"{where}: no title")
        return
    if not isinstance(abstract, str) or not clean(abstract):
        result.problems.append(f"{where}: no abstract")
        return
    title_raw, abstract_raw = title, abstract
    title, abstract = clean(title), clean(abstract)
    if len(title) > MAX_TITLE_CHARS:
        result.problems.append(f"{where}: title longer than {MAX_TITLE_CHARS} characters")
        return
    if len(abstract) > MAX_FIELD_CHARS:
        result.problems.append(f"{where}: abstract longer than {MAX_FIELD_CHARS} characters")
        return
    if _dirty([title_raw, abstract_raw, *raw]):
        result.sanitized += 1
    result.papers.append(Paper(title=title, abstract=abstract, source=source, **extra))
    result.where.append(where)


def year_of(value: object) -> int | None:
    match = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", str(value)) if value not in (None, "") else None
    return int(match.group(1)) if match else None


def string_list(value: object, split: str) -> list[str]:
    if isinstance(value, list):
        return [clean(str(v)) for v in value if clean(str(v))]
    if isinstance(value, str):
        return [part for part in (clean(p) for p in re.split(split, value)) if part]
    return []


def paper_from_record(result: ReadResult, where: str, source: str, record: dict) -> None:
    """A JSON record: our own JSONL fields or the arXiv metadata snapshot's."""
    arxiv_id = clean(record["id"]) if isinstance(record.get("id"), str) else None
    url = (clean(record["url"]) or None) if isinstance(record.get("url"), str) else None
    if url is None and arxiv_id and "update_date" in record:
        url = f"https://arxiv.org/abs/{arxiv_id}"
    year = year_of(record.get("year")) or year_of(record.get("update_date")) or year_of(record.get("published"))
    make_paper(
        result,
        where,
        source,
        record.get("title"),
        record.get("abstract", record.get("summary")),
        raw=[record.get("authors"), record.get("url"), record.get("categories")],
        authors=string_list(record.get("authors"), r",\s*|\s+and\s+"),
        year=year,
        url=url,
        categories=string_list(record.get("categories"), r"[\s,;]+"),
    )
