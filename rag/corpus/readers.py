"""Corpus readers: page dumps, JSON Lines, arXiv metadata, BibTeX and CSV files -> `Paper`s.

Readers never raise on bad records: each rejected record becomes a problem `file:line: reason`
and the rest of the file is still read. Only a path that does not exist is an error.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rag.errors import CorpusError
from rag.safety import has_controls, strip_controls
from rag.settings import BUNDLED_CORPUS
from rag.types import Paper

SUFFIXES = {".txt", ".jsonl", ".json", ".ndjson", ".bib", ".csv"}
BUNDLED_PREFIX = "bundled:"
MAX_TITLE_CHARS = 400
MIN_ABSTRACT_WORDS = 12
MAX_FIELD_CHARS = 100_000

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# Page chrome of the "daily papers" dumps: never a title nor an abstract.
_CHROME = re.compile(
    rf"^(new|subscribe|byak and the research community|get trending papers in your email inbox.*"
    rf"|(?:{_MONTHS})[a-z]*\.? \d{{1,2}}(?:, \d{{4}})?|\d{{4}}-\d{{2}}-\d{{2}})$",
    re.IGNORECASE,
)
# One dump glues the "Subscribe" button to the first title ("SubscribeHLTCOE at LiveRAG ...").
_GLUED_CHROME = re.compile(r"^Subscribe(?=[A-Z0-9])")


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


def _make_paper(
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


def _looks_like_title(line: str) -> bool:
    return len(line) <= MAX_TITLE_CHARS and len(line.split()) <= 40


def _looks_like_abstract(line: str) -> bool:
    return len(line.split()) >= MIN_ABSTRACT_WORDS


def _lines(text: str) -> list[str]:
    """Lines as an editor numbers them: split at \n only (str.splitlines also splits at U+2028,
    form feeds and other characters that JSON strings may hold)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_page_dump(text: str, source: str) -> ReadResult:
    """A "daily papers" page dump: chrome lines, then title and abstract lines (blank lines or not)."""
    result = ReadResult(files=1)
    lines: list[tuple[int, str, str]] = []
    for number, raw in enumerate(_lines(text), start=1):
        line = _GLUED_CHROME.sub("", clean(raw))
        if line and not _CHROME.match(line):
            lines.append((number, line, raw))
    i = 0
    while i < len(lines):
        number, line, raw = lines[i]
        nxt = lines[i + 1][1] if i + 1 < len(lines) else None
        if _looks_like_title(line) and nxt is not None and _looks_like_abstract(nxt):
            _make_paper(result, f"{source}:{number}", source, line, nxt, raw=[raw, lines[i + 1][2]])
            i += 2
            continue
        if _looks_like_title(line):
            result.problems.append(f"{source}:{number}: title without an abstract: {line[:60]!r}")
        else:
            result.problems.append(f"{source}:{number}: text without a title: {line[:60]!r}")
        i += 1
    return result


def _year(value: object) -> int | None:
    match = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", str(value)) if value not in (None, "") else None
    return int(match.group(1)) if match else None


def _string_list(value: object, split: str) -> list[str]:
    if isinstance(value, list):
        return [clean(str(v)) for v in value if clean(str(v))]
    if isinstance(value, str):
        return [part for part in (clean(p) for p in re.split(split, value)) if part]
    return []


def _paper_from_record(result: ReadResult, where: str, source: str, record: dict) -> None:
    """A JSON record: our own JSONL fields or the arXiv metadata snapshot's."""
    arxiv_id = clean(record["id"]) if isinstance(record.get("id"), str) else None
    url = (clean(record["url"]) or None) if isinstance(record.get("url"), str) else None
    if url is None and arxiv_id and "update_date" in record:
        url = f"https://arxiv.org/abs/{arxiv_id}"
    year = _year(record.get("year")) or _year(record.get("update_date")) or _year(record.get("published"))
    _make_paper(
        result,
        where,
        source,
        record.get("title"),
        record.get("abstract", record.get("summary")),
        raw=[record.get("authors"), record.get("url"), record.get("categories")],
        authors=_string_list(record.get("authors"), r",\s*|\s+and\s+"),
        year=year,
        url=url,
        categories=_string_list(record.get("categories"), r"[\s,;]+"),
    )


# Python's JSON parser recurses once per nesting level: a record nested deeper than the recursion
# limit (~1000) raises RecursionError. Such a record is reported and skipped like any bad one.
TOO_DEEP = "JSON nested too deeply (more than ~1000 levels)"
_TOO_DEEP = object()
_JSON_PLAIN = re.compile(r'[^"\[\]{}]*')


def _skip_json_value(text: str, pos: int) -> int:
    """The end of the JSON value that starts at `pos`, found without recursion (brackets counted
    outside strings); used to step over a value too deep to parse."""
    depth, end = 0, len(text)
    while pos < end:
        pos = _JSON_PLAIN.match(text, pos).end()
        if pos >= end:
            break
        char = text[pos]
        if char == '"':
            pos += 1
            while pos < end and text[pos] != '"':
                pos += 2 if text[pos] == "\\" else 1
        elif char in "[{":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                return pos + 1
        pos += 1
    return end


def _array_items(text: str) -> Iterator[tuple[int, object]]:
    """The elements of a JSON array with the line each starts on (`_TOO_DEEP` for an element nested
    too deeply to parse); ValueError(line, msg) if malformed."""
    decoder, pos = json.JSONDecoder(), text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise ValueError(text.count("\n") + 1, "the array is not closed")
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(exc.lineno, exc.msg) from None
        except RecursionError:
            item, pos = _TOO_DEEP, _skip_json_value(text, pos)
        yield line, item


def _add_record(result: ReadResult, where: str, source: str, record: object) -> None:
    """One parsed JSON value: a paper, or a problem `where: reason`."""
    if record is _TOO_DEEP:
        result.problems.append(f"{where}: {TOO_DEEP}")
    elif not isinstance(record, dict):
        result.problems.append(f"{where}: not a JSON object")
    else:
        try:
            _paper_from_record(result, where, source, record)
        except RecursionError:  # a field nested just below the parser's limit
            result.problems.append(f"{where}: {TOO_DEEP}")


def read_json(text: str, source: str) -> ReadResult:
    """A .json file: one array of records, or (like the arXiv snapshot) one object per line."""
    if not text.lstrip().startswith("["):
        return read_jsonl(text, source)
    result = ReadResult(files=1)
    try:
        for line, record in _array_items(text):
            _add_record(result, f"{source}:{line}", source, record)
    except ValueError as exc:
        line, message = exc.args
        result.problems.append(f"{source}:{line}: not valid JSON: {message}; the records after it were not read")
    return result


def _jsonl_line(result: ReadResult, source: str, number: int, line: str) -> None:
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        result.problems.append(f"{source}:{number}: not valid JSON: {exc.msg}")
        return
    except RecursionError:
        record = _TOO_DEEP
    _add_record(result, f"{source}:{number}", source, record)


def read_jsonl(text: str, source: str) -> ReadResult:
    """JSON Lines: one record a line; a bad line is reported and skipped."""
    result = ReadResult(files=1)
    for number, line in enumerate(_lines(text), start=1):
        _jsonl_line(result, source, number, line)
    return result


def read_jsonl_stream(lines: Iterable[bytes], source: str) -> ReadResult:
    """JSON Lines read line by line from a binary file (a large file is never held whole in memory);
    a line that is not UTF-8 is one bad record."""
    result = ReadResult()
    for piece in iter_jsonl_stream(lines, source):
        result.extend(piece)
    return result


def iter_jsonl_stream(lines: Iterable[bytes], source: str, papers_per_piece: int = 1000) -> Iterator[ReadResult]:
    """`read_jsonl_stream` as pieces of at most `papers_per_piece` papers (the first one counts the
    file), so that a caller can use each piece and let it go before the next is read."""
    piece = ReadResult(files=1)
    blank = True
    for number, raw in enumerate(lines, start=1):  # a binary file splits at \n only, as _lines does
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            piece.problems.append(f"{source}:{number}: not UTF-8 text (convert it with iconv -t UTF-8)")
            blank = False
            continue
        blank = blank and not line.strip()
        _jsonl_line(piece, source, number, line.removesuffix("\n").removesuffix("\r"))
        if len(piece.papers) >= papers_per_piece:
            yield piece
            piece = ReadResult()
    if blank:
        piece.problems.append(f"{source}: empty file")
    yield piece


def read_csv(text: str, source: str) -> ReadResult:
    result = ReadResult(files=1)
    limit = csv.field_size_limit(max(csv.field_size_limit(), 4 * MAX_FIELD_CHARS))  # too long is _make_paper's call
    try:
        _read_csv_rows(result, text, source)
    finally:
        csv.field_size_limit(limit)
    return result


def _read_csv_rows(result: ReadResult, text: str, source: str) -> None:
    stream = io.StringIO(text, newline="")  # quoted fields may hold \r and \n
    reader = csv.DictReader(stream)
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        result.problems.append(f"{source}:1: bad CSV header: {exc}")
        return
    columns = {name.strip().lower(): name for name in fieldnames if name}
    title_col = columns.get("title")
    abstract_col = columns.get("abstract") or columns.get("summary")
    if not title_col or not abstract_col:
        result.problems.append(
            f"{source}:1: CSV needs 'title' and 'abstract' columns (found: {', '.join(columns) or 'none'})"
        )
        return
    rows = iter(reader)
    while True:
        before = stream.tell()
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on with the next record (its line_num skips this one)
            result.problems.append(f"{source}:{text.count(chr(10), 0, before) + 1}: bad CSV: {exc}")
            if stream.tell() == before:
                return  # nothing was consumed: stop rather than loop
            continue
        where = f"{source}:{reader.line_num}"
        authors = row.get(columns.get("authors", ""), "") or ""
        _make_paper(
            result,
            where,
            source,
            row.get(title_col),
            row.get(abstract_col),
            raw=[authors, row.get(columns.get("url", ""), "")],
            authors=_string_list(authors, r";\s*|,\s*|\s+and\s+"),
            year=_year(row.get(columns.get("year", ""), "")),
            url=clean(row.get(columns.get("url", ""), "") or "") or None,
        )


_BIB_START = re.compile(r"@\s*([A-Za-z]+)\s*[{(]")
_BIB_FIELD = re.compile(r"\s*([A-Za-z][\w-]*)\s*=\s*")


def _bib_value(body: str, pos: int) -> tuple[str, int]:
    """Read one field value (braced, quoted or bare) starting at `pos`; return it and the end."""
    if pos < len(body) and body[pos] == "{":
        depth, start = 0, pos
        while pos < len(body):
            if body[pos] == "{" and body[pos - 1 : pos] != "\\":
                depth += 1
            elif body[pos] == "}" and body[pos - 1 : pos] != "\\":
                depth -= 1
                if depth == 0:
                    return body[start + 1 : pos], pos + 1
            pos += 1
        raise ValueError("unbalanced braces")
    if pos < len(body) and body[pos] == '"':
        end = body.find('"', pos + 1)
        if end < 0:
            raise ValueError("unterminated quoted value")
        return body[pos + 1 : end], end + 1
    match = re.match(r"[^,}\s]*", body[pos:])
    return match.group(0), pos + len(match.group(0))


def _bib_fields(body: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    pos = body.find(",") + 1  # skip the citation key
    while 0 < pos < len(body):
        match = _BIB_FIELD.match(body, pos)
        if not match:
            break
        value, pos = _bib_value(body, match.end())
        fields[match.group(1).lower()] = value
        comma = body.find(",", pos)
        if comma < 0:
            break
        pos = comma + 1
    return fields


def _latex_to_text(value: str) -> str:
    value = re.sub(r"\\[a-zA-Z]+\s*\{([^{}]*)\}", r"\1", value)  # \emph{x} -> x
    return clean(value.replace("{", "").replace("}", "").replace("\\&", "&").replace("~", " "))


def read_bibtex(text: str, source: str) -> ReadResult:
    result = ReadResult(files=1)
    starts = list(_BIB_START.finditer(text))
    for index, match in enumerate(starts):
        kind = match.group(1).lower()
        if kind in {"comment", "string", "preamble"}:
            continue
        where = f"{source}:{text.count(chr(10), 0, match.start()) + 1}"
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        try:
            fields = _bib_fields(text[match.end() : end])
        except ValueError as exc:
            result.problems.append(f"{where}: bad BibTeX entry: {exc}")
            continue
        if "abstract" not in fields:
            result.problems.append(f"{where}: BibTeX entry has no abstract field")
            continue
        url = clean(fields.get("url") or (f"https://doi.org/{fields['doi']}" if fields.get("doi") else "")) or None
        _make_paper(
            result,
            where,
            source,
            _latex_to_text(fields.get("title", "")),
            _latex_to_text(fields["abstract"]),
            raw=[fields.get("title"), fields.get("abstract"), fields.get("author"), url, fields.get("keywords")],
            authors=_string_list(_latex_to_text(fields.get("author", "")), r"\s+and\s+"),
            year=_year(fields.get("year")),
            url=url,
            categories=_string_list(fields.get("keywords", ""), r"[,;]\s*"),
        )
    if not starts:
        result.problems.append(f"{source}:1: no BibTeX entries found")
    return result


_READERS = {
    ".txt": read_page_dump,
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".json": read_json,
    ".bib": read_bibtex,
    ".csv": read_csv,
}


def _is_json_lines(f: BinaryIO, suffix: str) -> bool:
    """JSON Lines, or a .json file that is not one array (the arXiv snapshot: one object a line)?"""
    if suffix != ".json":
        return suffix in (".jsonl", ".ndjson")
    start = f.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    f.seek(0)
    return not start.startswith(b"[") and bool(start)


def read_file(path: Path, source: str | None = None) -> ReadResult:
    """Read one corpus file; problems (not exceptions) for anything that cannot be used.

    JSON Lines files are read line by line; the other formats are read whole (they hold one
    structure: an array, BibTeX entries, CSV with multi-line fields, page dumps).
    """
    result = ReadResult()
    for piece in iter_file(path, source):
        result.extend(piece)
    return result


def iter_file(path: Path, source: str | None = None, papers_per_piece: int = 1000) -> Iterator[ReadResult]:
    """`read_file` in pieces: a JSON Lines file (the arXiv snapshot) in pieces of at most
    `papers_per_piece` papers, read as they are used; any other file in one piece. Each piece's
    `done` is the share of the file read."""
    source = source or str(path)
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        yield ReadResult(problems=[f"{source}: unsupported file type (use {', '.join(sorted(SUFFIXES))})"], files=1)
        return
    try:
        with open(path, "rb") as f:
            if _is_json_lines(f, suffix):
                size = max(1, os.fstat(f.fileno()).st_size)
                for piece in iter_jsonl_stream(f, source, papers_per_piece):
                    piece.done = min(1.0, f.tell() / size)
                    yield piece
                return
            data = f.read()
    except OSError as exc:
        yield ReadResult(problems=[f"{source}: cannot read: {exc.strerror or exc}"], files=1)
        return
    yield _read_whole(data, reader, source)


def _read_whole(data: bytes, reader: Callable[[str, str], ReadResult], source: str) -> ReadResult:
    if not data.strip():
        return ReadResult(problems=[f"{source}: empty file"], files=1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return ReadResult(problems=[f"{source}:{line}: not UTF-8 text (convert it with iconv -t UTF-8)"], files=1)
    result = reader(text, source)
    if not result.papers and not result.problems:
        result.problems.append(f"{source}: no papers found")
    return result


def _unusable(path: Path) -> str | None:
    """Why a path given or found cannot be read as it stands (None: it can be tried)."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: symbolic link loop ({exc.strerror}); fix or remove the link"
        if path.is_symlink():
            return f"{path}: broken symbolic link (to {os.readlink(path)}); fix or remove the link"
        if exc.errno == errno.ENOENT:
            return f"{path}: no such file or directory"
        return f"{path}: cannot read: {exc.strerror}"
    return None


def _walk(folder: Path, result: ReadResult) -> Iterator[Path]:
    """Corpus files under `folder`, sorted; unreadable folders and broken or looping links are
    reported (and counted as files when they look like corpus files) instead of being skipped."""

    def unreadable(exc: OSError) -> None:
        result.problems.append(f"{exc.filename}: cannot read the folder: {exc.strerror}")

    found = []
    for root, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            path = Path(root) / name
            if path.suffix.lower() not in SUFFIXES:
                continue
            problem = _unusable(path)
            if problem is None and path.is_file():
                found.append(path)
            elif problem is not None:
                result.problems.append(problem)
                result.files += 1
    yield from sorted(found)


def read_corpus(paths: Iterable[Path | str] | None = None) -> ReadResult:
    """Read files and folders (None: the bundled seed corpus).

    A path that was given and cannot be used at all (missing, a link loop) is a CorpusError; what
    a folder holds that cannot be read is a problem of the result.
    """
    result = ReadResult()
    for piece in stream_corpus(paths):
        result.extend(piece)
    return result


def stream_corpus(paths: Iterable[Path | str] | None = None, papers_per_piece: int = 1000) -> Iterator[ReadResult]:
    """`read_corpus` in pieces, read as they are used: JSON Lines files in pieces of at most
    `papers_per_piece` papers, other files one piece each. Each piece's `done` is the share of all
    the files' bytes read so far (for progress estimates). The paths are checked before the first
    piece (a CorpusError as for `read_corpus`)."""
    files: list[tuple[Path, str | None]] = []
    if paths is None:
        files = [(path, BUNDLED_PREFIX + path.name) for path in sorted(BUNDLED_CORPUS.glob("*.txt"))]
        return _stream_files([], files, papers_per_piece)
    given = [Path(p) for p in paths]
    for path in given:
        problem = _unusable(path)
        if problem is not None:
            raise CorpusError(problem)
    found = ReadResult(done=0.0)  # the problems met while looking for files
    for path in given:
        files += [(file, None) for file in (_walk(path, found) if path.is_dir() else [path])]
    return _stream_files([found], files, papers_per_piece)


def _stream_files(
    first: list[ReadResult], files: list[tuple[Path, str | None]], papers_per_piece: int
) -> Iterator[ReadResult]:
    sizes = []
    for path, _ in files:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    total = max(1, sum(sizes))
    before = 0
    yield from first
    for (path, source), size in zip(files, sizes):
        for piece in iter_file(path, source, papers_per_piece):
            piece.done = min(1.0, (before + piece.done * size) / total)
            yield piece
        before += size


def dedupe(
    papers: Iterable[Paper], where: Sequence[str] | None = None, problems: list[str] | None = None
) -> list[Paper]:
    """One paper per normalised title, remembering every source it was seen in.

    When one title comes with two different abstracts, the last one read wins (a newer file
    replaces an older version of the same paper); with `where` (each paper's `file:line`) and
    `problems`, the replaced record is reported there.

    The papers are not copied (a large corpus would be held twice): the paper kept for a title
    gets the merged `sources` list.
    """
    by_title: dict[str, tuple[Paper, int]] = {}
    for index, paper in enumerate(papers):
        key = paper.title_key
        seen = by_title.get(key)
        if seen is None:
            by_title[key] = (paper, index)
            continue
        kept, first = seen
        sources = kept.sources + [s for s in paper.sources if s not in kept.sources]
        if kept.paper_id != paper.paper_id:
            if where is not None and problems is not None:
                problems.append(f"{where[first]}: replaced by {where[index]} (the same title with another abstract)")
            kept, first = paper, index
        kept.sources = sources  # a new list: the one it replaces may be shared with the reader's copy
        by_title[key] = (kept, first)
    return [paper for paper, _ in by_title.values()]
