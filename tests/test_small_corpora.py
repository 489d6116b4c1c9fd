"""A user's own corpus of any size stays searchable, process after process, and reads never rewrite it.

Chroma snapshots its HNSW files only every 1,000 writes; an index below that used to be rewritten
by the first reader and then reported as damaged by every later one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.testing import write_synthetic_corpus as write_corpus

SCRIPT = """
import json, sys
from rag import Assistant, Settings
from rag.testing import HashEmbedder

home, action, arg = sys.argv[1:4]
# 64 dimensions: the corpus below gives every paper the same words but two, and hash collisions keep
# its vectors from being all equidistant (which HNSW cannot navigate); this test is about the store.
assistant = Assistant(Settings(home=home), embedder=HashEmbedder(dimension=64))
if action == "ingest":
    print(json.dumps({"chunks": assistant.ingest([arg]).chunks_added}))
else:
    hits = assistant.search(arg, k=3)
    print(json.dumps({"titles": [h.title for h in hits], "vectors": assistant.stats().vectors}))
"""


def run(home: Path, action: str, arg: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home), action, arg],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def vector_files(home: Path) -> dict[str, str]:
    """Digest of every file of the vector store but Chroma's own SQLite log (it records each open)."""
    root = home / "index" / "chroma"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("chroma.sqlite3")
    }


def check_searchable(tmp_path: Path, papers: int, readers: int = 3) -> None:
    home = tmp_path / f"home-{papers}"
    corpus = write_corpus(tmp_path / f"corpus-{papers}.jsonl", papers)
    assert run(home, "ingest", str(corpus))["chunks"] == papers
    written = vector_files(home)
    for reader in range(readers):
        target = (reader * 7919) % papers
        found = run(home, "search", f"Study {target} of marker zq{target}x")
        assert found["vectors"] == papers
        assert found["titles"][0] == f"Study {target} of marker zq{target}x"
        assert vector_files(home) == written, f"reader {reader + 1} rewrote the vector files"


@pytest.mark.slow
@pytest.mark.parametrize("papers", [1, 2, 999, 1000, 1001, 5000])
def test_index_of_any_size_is_searchable_in_later_processes(tmp_path, papers):
    check_searchable(tmp_path, papers)


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(papers=st.integers(min_value=1, max_value=1200))
def test_random_small_corpora_stay_searchable(tmp_path_factory, papers):
    check_searchable(tmp_path_factory.mktemp("corpus"), papers)


@pytest.mark.slow
def test_ingest_after_ingest_keeps_later_reads_clean(tmp_path):
    # A second ingest into an index whose first batch was never snapshotted must leave a snapshot too.
    home = tmp_path / "home"
    run(home, "ingest", str(write_corpus(tmp_path / "a.jsonl", 3)))
    more = write_corpus(tmp_path / "b.jsonl", 5)
    assert run(home, "ingest", str(more))["chunks"] == 2
    written = vector_files(home)
    assert run(home, "search", "zq4x")["titles"][0] == "Study 4 of marker zq4x"
    assert run(home, "search", "zq1x")["vectors"] == 5
    assert vector_files(home) == written
