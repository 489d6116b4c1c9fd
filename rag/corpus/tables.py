"""BibTeX (.bib) and CSV corpora: one entry or row a paper."""

from __future__ import annotations

import csv
import io
import logging
from typing import TYPE_CHECKING

from rag.corpus.latex import latex_to_text
from rag.corpus.records import MAX_FIELD_CHARS, ReadResult, clean, make_paper, string_list, year_of

if TYPE_CHECKING:
    from bibtexparser.model import Entry


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


_SILENT = logging.NullHandler()  # added once however many files are read


def read_bibtex(text: str, source: str) -> ReadResult:
    """One paper an entry with an abstract. bibtexparser reads the file (@string references, comments,
    a broken entry reported without taking down the rest); pylatexenc turns the LaTeX into text."""
    import bibtexparser
    from bibtexparser.model import Block, DuplicateBlockKeyBlock, Entry

    result = ReadResult(files=1)
    # bibtexparser also logs each broken entry; with no logging set up, Python would print that on
    # stderr beside the reader's own report of it
    logging.getLogger("bibtexparser").addHandler(_SILENT)
    library = bibtexparser.parse_string(text)
    blocks: list[Block] = [*library.entries, *library.failed_blocks]
    for block in sorted(blocks, key=lambda b: b.start_line or 0):
        where = f"{source}:{(block.start_line or 0) + 1}"
        if isinstance(block, DuplicateBlockKeyBlock):  # a key used twice still names a paper
            _read_entries(result, where, source, bibtexparser.parse_string(block.raw or "").entries)
        elif isinstance(block, Entry):
            _read_entries(result, where, source, [block])
        else:
            error = getattr(block, "error", None)
            problem = " ".join(str(getattr(error, "abort_reason", None) or error or "not an entry").split())
            result.problems.append(f"{where}: bad BibTeX entry: {problem}")
    if not blocks:
        result.problems.append(f"{source}:1: no BibTeX entries found")
    return result


def _read_entries(result: ReadResult, where: str, source: str, entries: list[Entry]) -> None:
    for entry in entries:
        fields = {key.lower(): str(field.value) for key, field in entry.fields_dict.items()}
        if "abstract" not in fields:
            result.problems.append(f"{where}: BibTeX entry has no abstract field")
            continue
        doi = fields.get("doi", "")
        url = clean(fields.get("url") or (f"https://doi.org/{doi}" if doi else "")) or None
        make_paper(
            result,
            where,
            source,
            latex_to_text(fields.get("title", "")),
            latex_to_text(fields["abstract"]),
            raw=[fields.get("title"), fields.get("abstract"), fields.get("author"), url, fields.get("keywords")],
            authors=string_list(latex_to_text(fields.get("author", "")), r"\s+and\s+"),
            year=year_of(fields.get("year")),
            url=url,
            categories=string_list(fields.get("keywords", ""), r"[,;]\s*"),
        )
