"""A deleted or emptied catalog in a data dir built from the user's own corpus: the next search says
what is missing and how to rebuild it, instead of indexing the bundled corpus into that home."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from click.testing import CliRunner

from rag import Assistant, IndexMissingError, Settings
from rag.cli import cli
from rag.corpus.provenance import BUNDLED, MARKER
from rag.testing import HashEmbedder


@pytest.fixture
def hash_cli(hashed_assistants):
    def run(home, *args):
        return CliRunner().invoke(cli, ["--home", str(home), *args], obj={})

    return run


def _lose_catalog(home, how: str) -> None:
    catalog = home / "index" / "catalog.sqlite"
    if how == "deleted":
        for path in catalog.parent.glob("catalog.sqlite*"):
            path.unlink()
    else:
        with sqlite3.connect(catalog) as db:
            db.execute("DELETE FROM chunks")
            db.execute("DELETE FROM papers")


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_index_of_the_users_corpus_is_reported_not_replaced(rag_home, small_corpus, hash_cli, how):
    assert hash_cli(rag_home, "ingest", str(small_corpus)).exit_code == 0
    recorded = json.loads((rag_home / MARKER).read_text())["sources"]
    assert recorded == [str((small_corpus / "small.jsonl").resolve())]
    _lose_catalog(rag_home, how)

    for command in (["search", "surface codes"], ["ask", "How much does the logical error rate fall?"]):
        result = hash_cli(rag_home, *command)
        assert result.exit_code == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"Error: the index in {rag_home / 'index'} is missing or empty; it held 1 file (")
        assert f"run `rag ingest --rebuild {small_corpus / 'small.jsonl'}`" in line
    # nothing was indexed into the home meanwhile (before: the bundled corpus, 453 papers)
    catalog = rag_home / "index" / "catalog.sqlite"
    if catalog.exists():
        with sqlite3.connect(catalog) as db:
            assert db.execute("SELECT COUNT(*) FROM papers").fetchone()[0] == 0


def test_the_library_and_the_chat_get_the_same_error(rag_home, small_corpus):
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    try:
        a.ingest([small_corpus])
        a.close()
        _lose_catalog(rag_home, "deleted")
        assert not a.first_run
        with pytest.raises(IndexMissingError, match="it held 1 file"):
            a.ensure_index()
        with pytest.raises(IndexMissingError, match="rag ingest --rebuild"):
            a.search("surface codes")
        a.ingest([small_corpus], rebuild=True)  # the way out
        assert a.search("surface codes", k=1)[0].title.startswith("Quantum Error Correction")
    finally:
        a.close()


def test_a_home_of_the_bundled_corpus_says_rag_ingest(rag_home):
    (rag_home).mkdir(parents=True)
    (rag_home / MARKER).write_text(json.dumps({"sources": [BUNDLED]}))
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    with pytest.raises(IndexMissingError, match=r"it held the bundled corpus; run `rag ingest` to index the bundled"):
        a.ensure_index()


def test_first_run_only_in_a_data_dir_that_never_held_an_index(rag_home, small_corpus):
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    assert a.first_run
    with pytest.raises(IndexMissingError, match=r"no index in .*; run `rag ingest`"):
        a.search("anything")  # a fresh home: the plain message (the CLI indexes the bundled corpus here)
    # an ingest cut short before any record leaves vectors behind: not a first run any more
    (rag_home / "index" / "chroma").mkdir(parents=True)
    assert not a.first_run
    with pytest.raises(IndexMissingError, match=re.escape("run `rag ingest PATH...` with the files it was built from")):
        a.ensure_index()


def test_rebuild_replaces_the_record_and_ingests_add_to_it(rag_home, small_corpus, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"title": "Another Paper Entirely", "abstract": "word " * 30}) + "\n")
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    try:
        a.ingest([small_corpus])
        a.ingest([other])
        assert a.provenance.sources() == sorted([str(other.resolve()), str((small_corpus / "small.jsonl").resolve())])
        a.ingest([other], rebuild=True)
        assert a.provenance.sources() == [str(other.resolve())]
    finally:
        a.close()
