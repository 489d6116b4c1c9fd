"""BibTeX (.bib) and CSV corpora: one entry or row a paper."""

from __future__ import annotations

import csv
import io
import re

from rag.corpus.records import MAX_FIELD_CHARS, ReadResult, clean, make_paper, string_list, year_of


def read_csv(text: str, source: str) -> ReadResult:
    result = ReadResult(files=1)
    limit = csv.field_size_limit(max(csv.field_size_limit(), 4 * MAX_FIELD_CHARS))  # too long is make_paper's call
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
        make_paper(
            result,
            where,
            source,
            row.get(title_col),
            row.get(abstract_col),
            raw=[authors, row.get(columns.get("url", ""), "")],
            authors=string_list(authors, r";\s*|,\s*|\s+and\s+"),
            year=year_of(row.get(columns.get("year", ""), "")),
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
        make_paper(
            result,
            where,
            source,
            _latex_to_text(fields.get("title", "")),
            _latex_to_text(fields["abstract"]),
            raw=[fields.get("title"), fields.get("abstract"), fields.get("author"), url, fields.get("keywords")],
            authors=string_list(_latex_to_text(fields.get("author", "")), r"\s+and\s+"),
            year=year_of(fields.get("year")),
            url=url,
            categories=string_list(fields.get("keywords", ""), r"[,;]\s*"),
        )
    if not starts:
        result.problems.append(f"{source}:1: no BibTeX entries found")
    return result
