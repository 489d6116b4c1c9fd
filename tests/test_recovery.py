"""Damaged or half-written stores: detected at open with one clear line and a way out; repairs lose nothing."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import Assistant, IndexCorruptError, Settings
from rag.testing import HashEmbedder

QUESTION = "sparse retrieval with learned term weights"


def copy_of(bundled_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "copy"
    shutil.copytree(bundled_home / "index", home / "index")
    return home


def hnsw_file(home: Path, name: str) -> Path:
    segment = next(p for p in (home / "index" / "chroma").iterdir() if p.is_dir())
    return segment / name


def garble(path: Path, offset: int = 0, size: int = 4096) -> None:
    with open(path, "r+b") as f:
        f.seek(min(offset, max(0, path.stat().st_size - size)))
        f.write(random.Random(0).randbytes(min(size, path.stat().st_size)))


def rag(home: Path, models_home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAG_MODELS_HOME": str(models_home), **env},
    )


@pytest.mark.slow
def test_garbled_vector_index_file_is_an_error_not_a_crash(bundled_home, models_home, tmp_path):
    # Garbled HNSW data makes Chroma's native code crash the process: the manifest check must come first.
    home = copy_of(bundled_home, tmp_path)
    garble(hnsw_file(home, "data_level0.bin"), 100_000, 200_000)
    result = rag(home, models_home, "search", QUESTION)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "vector store is damaged" in lines[0] and "rag ingest" in lines[0]


@pytest.mark.parametrize(
    "damage",
    [
        "hnsw header garbled",
        "hnsw data truncated",
        "hnsw segment removed",
        "chroma sqlite garbled",
        "catalog header garbled",
        "catalog page garbled",
    ],
)
def test_damaged_store_is_detected_at_open_with_the_way_out(hashed_bundled_home, tmp_path, damage):
    home = copy_of(hashed_bundled_home, tmp_path)
    index = home / "index"
    if damage == "hnsw header garbled":
        garble(hnsw_file(home, "header.bin"), 0, 100)
    elif damage == "hnsw data truncated":
        os.truncate(hnsw_file(home, "data_level0.bin"), 1000)
    elif damage == "hnsw segment removed":
        shutil.rmtree(hnsw_file(home, "header.bin").parent)
    elif damage == "chroma sqlite garbled":
        garble(index / "chroma" / "chroma.sqlite3", 0, 100)
    elif damage == "catalog header garbled":
        garble(index / "catalog.sqlite", 0, 100)
    else:
        garble(index / "catalog.sqlite", 1 << 20, 8192)
    way_out = "rag ingest --rebuild" if damage.startswith("catalog") else "run `rag ingest` to re-embed"
    assistant = Assistant(Settings(home=home), embedder=HashEmbedder())
    try:
        with pytest.raises(IndexCorruptError, match=way_out) as caught:
            assistant.search(QUESTION)
        assert "\n" not in str(caught.value)
    finally:
        assistant.close()


def test_damaged_lexical_index_is_rebuilt_with_the_same_results(hashed_bundled_home, tmp_path):
    home = copy_of(hashed_bundled_home, tmp_path)
    intact = Assistant(Settings(home=home), embedder=HashEmbedder())
    expected = [h.chunk_id for h in intact.search(QUESTION, mode="lexical")]
    intact.close()
    garble(home / "index" / "lexical" / "docs.json", 0, 50)
    os.truncate(next((home / "index" / "lexical").glob("data.*.npy")), 100)
    repaired = Assistant(Settings(home=home), embedder=HashEmbedder())
    assert [h.chunk_id for h in repaired.search(QUESTION, mode="lexical")] == expected
    repaired.close()


def test_ingest_re_embeds_lost_vectors_from_the_catalog(assistant, small_corpus, settings, embedder, tmp_path):
    assistant.ingest([small_corpus])
    before = [(h.chunk_id, round(h.score, 6)) for h in assistant.search(QUESTION, k=5)]
    papers = assistant.stats().papers
    assistant.close()
    shutil.rmtree(settings.index_dir / "chroma")
    with pytest.raises(IndexCorruptError, match="rag ingest"):
        assistant.search(QUESTION)
    assistant.close()
    # The corpus files are gone too: the catalog alone must be enough to repair the index.
    shutil.rmtree(small_corpus)
    other = tmp_path / "other.jsonl"
    other.write_text(
        '{"title": "An Unrelated Paper on Bees", "abstract": "Honey bees communicate the direction of food sources with a waggle dance that other workers decode reliably."}\n'
    )
    report = assistant.ingest([other])
    assert (report.added, report.repaired) == (1, papers)
    assert any("vector store was damaged" in p for p in report.problems)
    stats = assistant.stats()
    assert (stats.papers, stats.vectors) == (papers + 1, stats.chunks)
    assert [(h.chunk_id, round(h.score, 6)) for h in assistant.search(QUESTION, k=5)][: len(before)] == before


def test_orphan_vectors_from_a_cut_batch_are_never_shown_and_then_removed(assistant, small_corpus):
    assistant.ingest([small_corpus])
    vectors = assistant.index.vectors
    query = assistant.embedder.encode_query(QUESTION)
    # What a crash between the vector write and the catalog commit leaves behind.
    vectors.add(
        ["ghost:0", "ghost:1"],
        np.stack([query, query]),
        ["ghost text", "ghost text"],
        [{"paper_id": "ghost", "position": 0, "title": "Ghost"}] * 2,
    )
    hits = assistant.search(QUESTION, k=10)
    assert hits and all(not h.chunk_id.startswith("ghost") for h in hits)
    report = assistant.ingest([small_corpus])
    assert report.orphans_removed == 2 and report.added == 0
    assert assistant.stats().vectors == assistant.stats().chunks


@pytest.mark.slow
def test_damage_that_keeps_size_and_mtime_is_found_by_search_doctor_and_repaired_by_ingest(
    bundled_home, models_home, tmp_path
):
    # Before: the check trusted an unchanged mtime and Chroma's native code crashed (exit 139).
    home = copy_of(bundled_home, tmp_path)
    target = hnsw_file(home, "data_level0.bin")
    rag(home, models_home, "search", QUESTION)  # a clean read first: it must not count as a change
    stat = target.stat()
    garble(target, 0, target.stat().st_size)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    search = rag(home, models_home, "search", QUESTION)
    assert search.returncode == 1 and "vector store is damaged" in search.stderr, search.stderr
    doctor = rag(home, models_home, "doctor")
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    assert "damaged" in doctor.stdout
    ingest = rag(home, models_home, "ingest")
    assert ingest.returncode == 0, ingest.stderr
    assert rag(home, models_home, "search", QUESTION).returncode == 0
