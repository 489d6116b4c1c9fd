"""kill -9 during `rag ingest` loses nothing committed; two writers never corrupt the data dir."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import Assistant, Settings
from rag.store.catalog_base import committed_paper_ids
from rag.store.locking import WriterLock

pytestmark = pytest.mark.slow  # `rag ingest` processes, killed and raced

BUNDLED = Path(__file__).parent.parent / "rag" / "data" / "corpus"


def rag_process(home: Path, models_home: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAG_MODELS_HOME": str(models_home), **env},
    )


def committed_papers(home: Path) -> set[str]:
    return committed_paper_ids(home / "index" / "catalog.sqlite")


def ids_of(home: Path, embedder) -> tuple[set[str], set[str], set[str]]:
    """(paper ids, chunk ids in the catalog, vector ids in Chroma)."""
    a = Assistant(Settings(home=home), embedder=embedder)
    try:
        catalog = a.index.catalog
        return catalog.paper_ids(), set(catalog.all_chunk_ids()), set(a.index.vectors.all_ids())
    finally:
        a.close()


def unshipped_corpus(target: Path, papers: int) -> Path:
    """Bundled papers reworded by one sentence, in JSONL: their vectors are not shipped, so the ingest
    embeds them (the bundled corpus's own vectors ship with the package and make its ingest take seconds,
    too short to be killed at a random moment)."""
    from rag.corpus.page_dumps import read_page_dump

    records = []
    for path in sorted(BUNDLED.glob("*.txt")):
        for paper in read_page_dump(path.read_text(encoding="utf-8"), path.name).papers:
            records.append({"title": paper.title, "abstract": f"{paper.abstract} This copy is for a crash test."})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(r) + "\n" for r in records[:papers]), encoding="utf-8")
    return target


def test_kill_9_during_ingest_loses_nothing_and_the_next_ingest_completes(models_home, embedder, tmp_path):
    home = tmp_path / "home"
    corpus = unshipped_corpus(tmp_path / "corpus" / "papers.jsonl", 640)  # 10 batches of 64 papers
    rng = random.Random(20261123)
    for trial in range(3):
        proc = rag_process(home, models_home, "ingest", str(corpus))
        before = committed_papers(home)
        # Kill at a random moment once this run has committed at least one batch of its own.
        while len(committed_papers(home)) <= len(before):
            assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr.read()[-500:]}"
            if trial == 1 and before:  # a reader meanwhile answers from the committed state
                reader = Assistant(Settings(home=home), embedder=embedder)
                assert reader.search("retrieval augmented generation", k=3)
                reader.close()
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 4.0))
        seen = committed_papers(home)
        proc.kill()
        proc.wait()
        assert proc.returncode == -9, "the ingest ended before the kill: the corpus is too small to test this"
        assert committed_papers(home) >= seen, f"trial {trial}: committed papers were lost"
        a = Assistant(Settings(home=home), embedder=embedder)
        assert a.search("vector search with a standard search engine", k=3)  # still searchable after the kill
        a.close()
    final = rag_process(home, models_home, "ingest", "--json", str(corpus))
    out, err = final.communicate(timeout=900)
    assert final.returncode == 0, err
    report = json.loads(out)
    assert report["added"] + report["unchanged"] == report["unique_papers"]
    assert report["unchanged"] > 0  # earlier committed batches were not embedded again

    clean_home = tmp_path / "clean"
    clean = Assistant(Settings(home=clean_home), embedder=embedder)
    clean.ingest([corpus])
    clean.close()
    papers, chunks, vectors = ids_of(home, embedder)
    clean_papers, clean_chunks, clean_vectors = ids_of(clean_home, embedder)
    assert papers == clean_papers and chunks == clean_chunks
    assert vectors == chunks == clean_vectors  # no duplicates, no orphans, nothing missing


def test_two_ingests_at_once_leave_a_consistent_index(small_corpus, models_home, embedder, tmp_path):
    home = tmp_path / "home"
    first = rag_process(home, models_home, "ingest", str(small_corpus))
    second = rag_process(home, models_home, "ingest", str(small_corpus))
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), results
    papers, chunks, vectors = ids_of(home, embedder)
    assert len(papers) == 5 and chunks == vectors


def test_a_busy_data_dir_says_who_holds_it(small_corpus, models_home, tmp_path):
    home = tmp_path / "home"
    with WriterLock(home, timeout=0).hold():
        proc = rag_process(home, models_home, "ingest", str(small_corpus), RAG_LOCK_TIMEOUT="1")
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    # The first use of a models dir prepares the paper model first ("Preparing ... (once)"): not this test's.
    lines = [line for line in err.strip().splitlines() if not line.startswith("Preparing ")]
    assert lines[0].startswith("waiting for another ingest")
    assert lines[-1].startswith(f"Error: another ingest (pid {os.getpid()}") and "run this again" in lines[-1]
    assert not committed_papers(home)
