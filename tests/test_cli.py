from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from rag.cli import cli


def run(*args: str, home, embedder=None) -> object:
    return CliRunner().invoke(cli, ["--home", str(home), *args], obj={"embedder": embedder}, catch_exceptions=False)


def test_ingest_search_json_and_stats(rag_home, small_corpus, embedder):
    result = run("ingest", str(small_corpus), home=rag_home, embedder=embedder)
    assert result.exit_code == 0, result.output
    result = run("search", "mixture of experts routing", "-k", "2", "--json", home=rag_home, embedder=embedder)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["query"] == "mixture of experts routing"
    assert [h["rank"] for h in data["hits"]] == [1, 2]
    assert set(data["hits"][0]) == {"rank", "paper_id", "title", "score", "text"}
    assert data["hits"][0]["title"] == "Sparse Mixture-of-Experts Language Models at Low Cost"
    stats = json.loads(run("stats", "--json", home=rag_home, embedder=embedder).stdout)
    assert stats["papers"] == 5
    result = run("search", "mixture of experts routing", "--source", "nowhere", home=rag_home, embedder=embedder)
    assert result.stdout == ""
    assert result.stderr.startswith("no matching passages: no source's name contains 'nowhere' (sources: ")


def test_bad_input_gives_one_line_and_nonzero_exit(rag_home, tmp_path):
    result = run("search", "   ", home=rag_home)
    assert result.exit_code == 1 and result.stderr.strip().startswith("Error: the question is empty")
    result = run("ingest", str(tmp_path / "nope.jsonl"), home=rag_home)
    assert result.exit_code == 1 and "no such file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = run("ingest", str(empty), home=rag_home)
    assert result.exit_code == 1 and "nothing could be ingested" in result.stderr
    result = run("stats", home=rag_home)
    assert result.exit_code == 1 and "rag ingest" in result.stderr


def test_a_bad_setting_is_one_line_naming_it(rag_home, monkeypatch):
    monkeypatch.setenv("RAG_CONTEXT_TOKENS", "5")
    result = CliRunner().invoke(cli, ["--home", str(rag_home), "search", "graphs"], obj={})
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: invalid setting RAG_CONTEXT_TOKENS=5: Input should be greater than or equal to 50"
    ]


def test_help_does_not_import_heavy_libraries():
    code = "import sys; from rag.cli import cli; print(sorted(m for m in ('torch','chromadb','llama_cpp','onnxruntime','sentence_transformers','bm25s') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_reader_that_goes_away_ends_the_output_silently(rag_home, small_corpus, hash_embedder):
    """`rag stats | head -1` said "Error: Broken pipe; check that the path exists ..." with exit 1."""
    assert run("ingest", str(small_corpus), home=rag_home, embedder=hash_embedder).exit_code == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rag.cli", "--home", str(rag_home), "stats"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")
