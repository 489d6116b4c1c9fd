"""Ingest of the arXiv metadata snapshot format: read as it is embedded, `--category`, `--limit`,
and duplicates (in the file, across batches, against the index) counted as a whole-file read did."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import rag.ingest.pipeline as rag_index
from rag import Assistant, CorpusError, Settings
from rag.cli import cli
from rag.corpus.readers import stream_corpus
from rag.corpus.records import CategoryFilter
from rag.store.catalog import Catalog
from rag.testing import ARXIV_CATEGORIES, HashEmbedder, arxiv_record, write_arxiv_snapshot
from rag.types import Paper

ABSTRACT = "We study a question about marker words with several experiments on data sets of many kinds."


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(rag_index, "PAPERS_PER_BATCH", 4)  # many batches from a small file


def ingest(home, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), "ingest", *args], obj={"embedder": HashEmbedder()})


def indexed(home) -> dict[str, Paper]:
    a = Assistant(Settings(home=home), embedder=HashEmbedder())
    try:
        catalog = a.index.catalog
        chunks, vectors = catalog.all_chunk_ids(), a.index.vectors.all_ids()
        assert sorted(chunks) == sorted(vectors)  # every chunk has its vector, nothing more
        return {p.title: p for p in catalog.all_papers()}
    finally:
        a.close()


def test_an_arxiv_snapshot_is_indexed_with_its_categories_authors_year_and_url(rag_home, tmp_path):
    snapshot = write_arxiv_snapshot(tmp_path / "arxiv-metadata-oai-snapshot.json", 30)
    result = ingest(rag_home, str(snapshot))
    assert result.exit_code == 0, result.output
    assert "1 files, 30 papers read, 30 unique: 30 added" in result.stderr
    papers = indexed(rag_home)
    paper = papers["Study 7 of marker zq7x"]
    assert paper.categories == ARXIV_CATEGORIES[7 % len(ARXIV_CATEGORIES)].split()
    assert paper.authors == ["Ada Author0", "Bo Builder7", "Cy Critic"]
    assert (paper.year, paper.url) == (2019, "https://arxiv.org/abs/2101.00007")
    assert paper.abstract == "We measure the zq7x effect in setting 7."


def test_category_takes_a_category_and_a_prefix_its_subcategories(rag_home, tmp_path):
    snapshot = write_arxiv_snapshot(tmp_path / "s.jsonl", 36)  # 6 of each entry of ARXIV_CATEGORIES
    result = ingest(rag_home, str(snapshot), "--category", "cs.CL")
    assert result.exit_code == 0, result.output
    assert "36 papers read (24 not in cs.CL), 12 unique: 12 added" in result.stderr
    assert all("cs.CL" in p.categories for p in indexed(rag_home).values())
    # "cs" is every cs.* (cs.CL, cs.LG, cs.CV, cs.IR), "stat" the stat.ML papers; not "hep" (hep-th is its own archive)
    result = ingest(rag_home, str(snapshot), "--category", "cs", "--category", "STAT", "--category", "hep")
    assert result.exit_code == 0, result.output
    papers = indexed(rag_home)
    assert len(papers) == 24
    assert not any(c.startswith(("hep", "q-bio")) for p in papers.values() for c in p.categories)


def test_no_paper_in_the_category_is_a_one_line_error_and_writes_nothing(rag_home, tmp_path):
    snapshot = write_arxiv_snapshot(tmp_path / "s.jsonl", 6)
    result = ingest(rag_home, str(snapshot), "--category", "cs.XX")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: none of the 6 papers read is in cs.XX (give arXiv categories such as cs.CL, or a prefix such as cs)"
    )
    assert not (rag_home / "index" / "catalog.sqlite").exists()


def test_category_filter_rule():
    wanted = CategoryFilter(["cs.CL", "math"])
    assert wanted(Paper(title="t", abstract="a", source="s", categories=["cs.LG", "cs.CL"]))
    assert wanted(Paper(title="t", abstract="a", source="s", categories=["math.ST"]))
    assert not wanted(Paper(title="t", abstract="a", source="s", categories=["cs.CLX", "mathematics"]))
    assert not wanted(Paper(title="t", abstract="a", source="s"))
    assert CategoryFilter()(Paper(title="t", abstract="a", source="s")) and not CategoryFilter(["  "])


def test_limit_takes_the_first_papers_and_the_same_command_again_changes_nothing(rag_home, tmp_path):
    snapshot = write_arxiv_snapshot(tmp_path / "s.jsonl", 40)
    result = ingest(rag_home, str(snapshot), "--limit", "10", "--category", "cs")
    assert result.exit_code == 0, result.output
    assert "10 unique: 10 added" in result.stderr
    first = indexed(rag_home)
    assert len(first) == 10 and all(any(c.startswith("cs.") for c in p.categories) for p in first.values())
    result = ingest(rag_home, str(snapshot), "--limit", "10", "--category", "cs")
    assert "10 unique: 0 added, 0 replaced, 10 unchanged" in result.stderr
    assert indexed(rag_home).keys() == first.keys()
    result = ingest(rag_home, str(snapshot), "--limit", "15", "--category", "cs")  # a larger limit continues
    assert "15 unique: 5 added, 0 replaced, 10 unchanged" in result.stderr
    assert len(indexed(rag_home)) == 15
    assert ingest(rag_home, str(snapshot), "--limit", "0").exit_code == 2  # click: not a count


def test_duplicates_across_batches_and_files_count_as_in_a_whole_file_read(rag_home, tmp_path):
    records = [arxiv_record(i) for i in range(12)]
    records.append(arxiv_record(1))  # the same record again, two batches later: not one more paper
    records.append(arxiv_record(2, abstract=ABSTRACT))  # same title, another abstract: replaces record 2
    records.append(arxiv_record(12))
    snapshot = tmp_path / "a.jsonl"
    snapshot.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = ingest(rag_home, str(snapshot))
    assert result.exit_code == 0, result.output
    assert f"warning: {snapshot}:3: replaced by {snapshot}:14 (the same title with another abstract)" in result.stderr
    assert "15 papers read, 13 unique: 13 added, 0 replaced, 0 unchanged" in result.stderr
    papers = indexed(rag_home)
    assert len(papers) == 13 and papers["Study 2 of marker zq2x"].abstract == ABSTRACT
    # Another file holding two of them: unchanged, and that file becomes one of their sources.
    other = tmp_path / "b.jsonl"
    other.write_text(json.dumps(arxiv_record(5)) + "\n" + json.dumps(arxiv_record(2, abstract=ABSTRACT)) + "\n")
    result = ingest(rag_home, str(other))
    assert "2 papers read, 2 unique: 0 added, 0 replaced, 2 unchanged" in result.stderr
    assert indexed(rag_home)["Study 5 of marker zq5x"].sources == [str(snapshot), str(other)]


def test_the_file_is_read_while_it_is_embedded_not_before(rag_home, tmp_path, monkeypatch):
    """Batches are committed while the file is still being read: the papers are never all in memory."""
    snapshot = write_arxiv_snapshot(tmp_path / "s.jsonl", 200)
    pieces = [p for p in stream_corpus([snapshot], papers_per_piece=8) if p.papers]
    assert len(pieces) == 25 and all(len(p.papers) == 8 for p in pieces)
    assert [round(p.done, 2) for p in pieces][-1] == 1.0 and pieces[0].done < 0.05
    read_when_committed: list[float] = []
    real_commit = Catalog.commit_batch

    def commit(self, *args, **kwargs):
        read_when_committed.append(done[-1])
        return real_commit(self, *args, **kwargs)

    done: list[float] = []

    def watched(paths, papers_per_piece):
        for piece in stream_corpus(paths, papers_per_piece):
            done.append(piece.done)
            yield piece

    import rag.ingest.from_files

    monkeypatch.setattr(rag.ingest.from_files, "stream_corpus", watched)
    monkeypatch.setattr(Catalog, "commit_batch", commit)
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    report = a.ingest([snapshot])
    a.close()
    assert report.added == 200 and len(read_when_committed) == 50
    assert read_when_committed[0] < 0.1  # the first batch was written with a tenth of the file read


def test_a_missing_path_is_still_an_error_before_anything_is_read(rag_home, tmp_path):
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    with pytest.raises(CorpusError, match="no such file"):
        a.ingest([tmp_path / "nope.jsonl"])
    a.close()
