"""Property-based tests: no input crashes a corpus reader, and every rejected record is reported
as `file:line: reason` while the good records around it are still read."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.corpus import MAX_TITLE_CHARS, read_file

SUFFIXES = [".txt", ".jsonl", ".json", ".bib", ".csv"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

WORDS = st.sampled_from("model retrieval sparse dense tokens attention graph protein cell quantum memory".split())
ODD = st.sampled_from(["\ufeff", "\x00", "\r", "\u2028", "é", "漢字", "🙂", "\u200b", "\t", " "])
title_text = st.lists(st.one_of(WORDS, ODD), min_size=2, max_size=12).map(" ".join).filter(lambda t: any(c.isalpha() for c in t))
abstract_text = st.lists(st.one_of(WORDS, WORDS, ODD), min_size=30, max_size=120).map(" ".join)
junk_line = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), min_size=1, max_size=200),
    st.just("{"), st.just("[1, 2]"), st.just('{"title": 3}'), st.just("x" * 200_000),
)


def problem_ok(problem: str, source: str, n_lines: int) -> bool:
    match = re.match(rf"^{re.escape(source)}(?::(\d+))?: \S", problem)
    if not match:
        return False
    line = match.group(1)
    return line is None or 1 <= int(line) <= max(n_lines, 1)


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=st.binary(max_size=3000), prefix=st.sampled_from([b"", b"\xef\xbb\xbf"]))
def test_arbitrary_bytes_never_crash_a_reader(tmp_path, suffix, data, prefix):
    path = tmp_path / f"corpus{suffix}"
    path.write_bytes(prefix + data)
    result = read_file(path)
    n_lines = (prefix + data).count(b"\n") + 1
    assert all(problem_ok(p, str(path), n_lines) for p in result.problems), result.problems
    for paper in result.papers:
        assert paper.title and paper.abstract and "\x00" not in paper.title + paper.abstract
        assert len(paper.title) <= MAX_TITLE_CHARS


@FUZZ
@given(
    records=st.lists(st.one_of(st.tuples(title_text, abstract_text), junk_line), min_size=1, max_size=12),
    newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(),
)
def test_jsonl_keeps_every_good_record_and_reports_every_bad_line(tmp_path, records, newline, bom):
    lines = [json.dumps({"title": r[0], "abstract": r[1]}, ensure_ascii=False) if isinstance(r, tuple) else r for r in records]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes((("\ufeff" if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    result = read_file(path)
    good = [r for r in records if isinstance(r, tuple)]
    assert len(result.papers) == len(good)
    bad_lines = {n for n, r in enumerate(records, start=1) if not isinstance(r, tuple) and r.strip()}
    reported = {int(p.split(":")[1].split(":")[0]) for p in result.problems}
    assert reported == bad_lines, (result.problems, bad_lines)


@FUZZ
@given(rows=st.lists(st.tuples(title_text, abstract_text), min_size=1, max_size=8), newline=st.sampled_from(["\n", "\r\n"]))
def test_csv_with_odd_unicode_and_line_endings_reads_every_row(tmp_path, rows, newline):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_ALL)  # a bare \r must be quoted
    writer.writerow(["title", "abstract"])
    writer.writerows(rows)
    path = tmp_path / "corpus.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    result = read_file(path)
    assert len(result.papers) == len(rows), result.problems


@FUZZ
@given(entries=st.lists(st.tuples(title_text, abstract_text, st.booleans()), min_size=1, max_size=8))
def test_bibtex_reports_entries_without_abstract_at_their_line(tmp_path, entries):
    text, starts = "", []
    for i, (title, abstract, has_abstract) in enumerate(entries):
        starts.append(text.count("\n") + 1)
        body = f"  title = {{{title}}},\n" + (f"  abstract = {{{abstract}}},\n" if has_abstract else "")
        text += f"@article{{key{i},\n{body}}}\n\n"
    path = tmp_path / "corpus.bib"
    path.write_text(text, encoding="utf-8")
    result = read_file(path)
    assert len(result.papers) == sum(1 for *_, has in entries if has)
    missing = {starts[i] for i, (*_, has) in enumerate(entries) if not has}
    assert {int(p.split(":")[1]) for p in result.problems} == missing


@FUZZ
@given(
    papers=st.lists(st.tuples(title_text, abstract_text), min_size=1, max_size=8),
    blank=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]),
)
def test_page_dump_in_both_layouts_reads_every_paper(tmp_path, papers, blank, newline):
    chrome = ["Get trending papers in your email inbox!", "Subscribe"]
    body = [line for title, abstract in papers for line in ([title, "", abstract] if blank else [title, abstract])]
    path = tmp_path / "dump.txt"
    path.write_text(newline.join(chrome + body) + newline, encoding="utf-8", newline="")
    result = read_file(path)
    assert len(result.papers) == len(papers), result.problems


@FUZZ
@given(records=st.lists(st.one_of(st.tuples(title_text, abstract_text), st.integers(), st.just([])), min_size=1, max_size=8))
def test_json_array_reports_bad_elements_at_their_line(tmp_path, records):
    items = [json.dumps({"title": r[0], "abstract": r[1]}, ensure_ascii=False) if isinstance(r, tuple) else json.dumps(r) for r in records]
    path = tmp_path / "corpus.json"
    path.write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")
    result = read_file(path)
    assert len(result.papers) == sum(1 for r in records if isinstance(r, tuple))
    bad = {n + 2 for n, r in enumerate(records) if not isinstance(r, tuple)}
    assert {int(p.split(":")[1]) for p in result.problems} == bad
