"""JSON and JSON Lines corpora (the arXiv metadata snapshot among them), read whole or as a stream;
a record nested too deeply for Python's parser is reported and skipped like any bad one."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator

from rag.corpus.page_dumps import page_lines
from rag.corpus.records import ReadResult, paper_from_record

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
            paper_from_record(result, where, source, record)
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
    for number, line in enumerate(page_lines(text), start=1):
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
    for number, raw in enumerate(lines, start=1):  # a binary file splits at \n only, as page_lines does
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
