from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.corpus.page_dumps import read_page_dump
from rag.corpus.readers import dedupe, read_corpus, read_file
from rag.errors import CorpusError

ABSTRACT = (
    "We study a problem that matters. Our method improves the state of the art by a clear margin "
    "on three benchmarks, and we release code."
)


def test_bundled_corpus_parses_all_entries_and_dedupes():
    result = read_corpus()
    assert result.problems == []
    assert len(result.papers) == 511
    papers = dedupe(result.papers)
    assert len(papers) == 453
    # every duplicate remembers all the files it was seen in
    assert sum(len(p.sources) for p in papers) == 511
    titles = {p.title for p in papers}
    assert not any(t.lower().startswith(("subscribe", "get trending", "byak")) for t in titles)


def test_page_dump_with_blank_lines_and_chrome():
    text = (
        "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nbyAK and the research community\n\n"
        f"Mar 12\n\nFirst Paper Title\n\n{ABSTRACT}\n\nSecond: A Paper\n\n{ABSTRACT} More.\n"
    )
    result = read_page_dump(text, "dump.txt")
    assert [p.title for p in result.papers] == ["First Paper Title", "Second: A Paper"]
    assert result.problems == []


def test_page_dump_without_blank_lines_and_glued_subscribe():
    text = (
        "Get trending papers in your email inbox once a day!\nGet trending papers in your email inbox!\n"
        f"SubscribeHLTCOE at LiveRAG: A System\n{ABSTRACT}\nAnother Title\n{ABSTRACT}\n"
    )
    result = read_page_dump(text, "dump.txt")
    assert [p.title for p in result.papers] == ["HLTCOE at LiveRAG: A System", "Another Title"]


def test_page_dump_reports_orphans_with_line_numbers():
    text = f"Good Title\n{ABSTRACT}\nOrphan Title\nAnother Orphan Title\n{ABSTRACT}\n"
    result = read_page_dump(text, "dump.txt")
    assert [p.title for p in result.papers] == ["Good Title", "Another Orphan Title"]
    assert result.problems == ["dump.txt:3: title without an abstract: 'Orphan Title'"]


def test_jsonl_reports_bad_lines_and_keeps_the_rest(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text(
        json.dumps({"title": "Good", "abstract": ABSTRACT, "year": 2020, "authors": ["A", "B"]}) + "\n"
        "{not json\n" + json.dumps({"title": "No abstract"}) + "\n" + json.dumps(["a list"]) + "\n",
        encoding="utf-8",
    )
    result = read_file(path)
    assert [p.title for p in result.papers] == ["Good"]
    assert result.papers[0].year == 2020 and result.papers[0].authors == ["A", "B"]
    assert [p.split(": ")[0] for p in result.problems] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_arxiv_metadata_snapshot(tmp_path):
    record = {
        "id": "2101.00001",
        "title": "An arXiv\n  Paper",
        "abstract": "  " + ABSTRACT.replace(". ", ".\n"),
        "authors": "Ada Lovelace, Alan Turing and Grace Hopper",
        "categories": "cs.CL cs.LG",
        "update_date": "2021-01-05",
    }
    path = tmp_path / "arxiv.json"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    (paper,) = read_file(path).papers
    assert paper.title == "An arXiv Paper"
    assert paper.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert paper.categories == ["cs.CL", "cs.LG"]
    assert paper.year == 2021
    assert paper.url == "https://arxiv.org/abs/2101.00001"
    assert "\n" not in paper.abstract


def test_bibtex(tmp_path):
    path = tmp_path / "refs.bib"
    path.write_text(
        "@comment{ignored}\n"
        "@article{key1,\n  title = {A {BibTeX} Paper on \\emph{Things}},\n  author = {Doe, Jane and Roe, Richard},\n"
        f"  year = 2019,\n  abstract = {{{ABSTRACT}}},\n  doi = {{10.1000/xyz}}\n}}\n"
        '@inproceedings{key2, title = "No Abstract Here", year = {2020}}\n',
        encoding="utf-8",
    )
    result = read_file(path)
    (paper,) = result.papers
    assert paper.title == "A BibTeX Paper on Things"
    assert paper.authors == ["Doe, Jane", "Roe, Richard"]
    assert paper.year == 2019 and paper.url == "https://doi.org/10.1000/xyz"
    assert result.problems == [f"{path}:9: BibTeX entry has no abstract field"]


def test_bibtex_as_reference_managers_export_it(tmp_path):
    # LaTeX accents, math, escaped and bare percent signs, citations, @string macros, a key used twice,
    # and a broken entry between good ones
    path = tmp_path / "export.bib"
    path.write_text(
        '@string{conf = "Proceedings of Things"}\n'
        "@inproceedings{godel,\n"
        "  title = {On {G}{\\\"o}del and Fr\\'echet Means of $\\alpha$-Nets},\n"
        '  author = {M{\\"u}ller, J{\\"o}rg and Fran\\c{c}ois, Lo{\\"i}c},\n'
        "  booktitle = conf,\n"
        f"  abstract = {{We prune 50% of the weights (and 10\\% of the heads) as in~\\cite{{prior}}. {ABSTRACT}}}\n"
        "}\n"
        "@article{broken, title = {Never closed,\n"
        "  abstract = {lost}\n"
        "@article{godel, title = {Same Key, Other Paper}, abstract = {" + ABSTRACT + "}}\n",
        encoding="utf-8",
    )
    result = read_file(path)
    first, second = result.papers
    assert first.title == "On Gödel and Fréchet Means of α-Nets"
    assert first.authors == ["Müller, Jörg", "François, Loïc"]
    assert first.abstract.startswith("We prune 50% of the weights (and 10% of the heads) as in. We study")
    assert second.title == "Same Key, Other Paper"
    assert [p.split(": ")[0] for p in result.problems] == [f"{path}:8"]
    assert "bad BibTeX entry" in result.problems[0]


def test_a_broken_bibtex_entry_is_reported_once_not_logged_on_stderr(tmp_path):
    # bibtexparser logs what it skips; a program without logging set up would print it on stderr
    path = tmp_path / "broken.bib"
    path.write_text(f"@article{{a, title = {{Open\n@article{{b, title = {{T}}, abstract = {{{ABSTRACT}}}}}\n")
    code = f"from pathlib import Path; from rag.corpus.readers import read_file; r = read_file(Path({str(path)!r})); print(len(r.papers), r.problems)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("1 [") and "broken.bib:1: bad BibTeX entry: " in done.stdout
    assert done.stderr == ""


def test_csv_and_csv_without_columns(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(f'Title,Abstract,Year\n"A CSV, Paper","{ABSTRACT}",2018\n', encoding="utf-8")
    (paper,) = read_file(good).papers
    assert paper.title == "A CSV, Paper" and paper.year == 2018
    bad = tmp_path / "bad.csv"
    bad.write_text("name,text\nx,y\n", encoding="utf-8")
    result = read_file(bad)
    assert result.papers == []
    assert "needs 'title' and 'abstract' columns" in result.problems[0]


def test_empty_non_utf8_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert read_file(empty).problems == [f"{empty}: empty file"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"Title\n" + "Résumé of a paper".encode("latin-1"))
    assert "not UTF-8" in read_file(latin).problems[0]
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus([tmp_path / "missing.jsonl"])


def test_paper_id_is_stable_and_content_derived():
    result = read_page_dump(f"A Title\n{ABSTRACT}\n", "a.txt")
    again = read_page_dump(f"A  title!\n{ABSTRACT}\n", "b.txt")
    changed = read_page_dump(f"A Title\n{ABSTRACT} Extra sentence.\n", "c.txt")
    assert result.papers[0].paper_id == again.papers[0].paper_id
    assert result.papers[0].paper_id != changed.papers[0].paper_id
    merged = dedupe(result.papers + again.papers)
    assert len(merged) == 1 and merged[0].sources == ["a.txt", "b.txt"]


def test_json_nested_100000_levels_is_one_warning_and_the_next_record_is_ingested(
    rag_home, tmp_path, hashed_assistants
):
    from click.testing import CliRunner

    from rag.cli import cli

    path = tmp_path / "deep.jsonl"
    path.write_text(
        "[" * 100_000 + "]" * 100_000 + "\n" + json.dumps({"title": "After The Deep One", "abstract": ABSTRACT}) + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["--home", str(rag_home), "ingest", str(path)], obj={})
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:1: JSON nested too deeply" in result.stderr
    assert "1 papers read, 1 unique: 1 added" in result.stderr
