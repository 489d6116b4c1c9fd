"""Remedies never destroy data: a bad setting is named before anything is deleted, a rebuild replaces
the index only when the new one is complete, and a full or read-only disk is not called damage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import Assistant, Settings
from rag.errors import DataDirError, IndexBusyError, IndexMismatchError, ModelError
from rag.store.index import COMPLETE, retired_dir, staging_dir
from rag.testing import HashEmbedder
from rag.testing import write_synthetic_corpus as write_corpus

SCRIPT = """
import json, sys, time
from rag import Assistant, Settings
from rag.errors import RagError
from rag.testing import HashEmbedder

home, action, arg = sys.argv[1:4]
assistant = Assistant(Settings(home=home), embedder=HashEmbedder())
try:
    if action == "rebuild-slowly":
        assistant.ingest([arg], rebuild=True, progress=lambda *_: time.sleep(0.02))
    elif action == "ingest":
        assistant.ingest([arg])
    hits = assistant.search("Study 1 of marker zq1x", k=1)
    print(json.dumps({"ok": True, "papers": assistant.stats().papers, "top": hits[0].title if hits else None}))
except RagError as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
"""


def run(home: Path, action: str, arg: str = "-") -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home), action, arg], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_typo_in_the_embedding_model_is_named_and_rebuild_deletes_nothing(settings, embedder, small_corpus):
    a = Assistant(settings, embedder=embedder)
    a.ingest([small_corpus])
    papers = a.stats().papers
    a.close()
    typo = Assistant(Settings(home=settings.home, embedding_model="all-MiniLM-L6-v3"))
    with pytest.raises(ModelError) as caught:
        typo.search("surface codes")
    message = str(caught.value)
    assert "all-MiniLM-L6-v2" in message and "RAG_EMBEDDING_MODEL" in message and "--rebuild" not in message
    with pytest.raises(ModelError):
        typo.ingest(rebuild=True)  # the remedy validates the model before it touches the index
    typo.close()
    again = Assistant(settings, embedder=embedder)
    assert again.stats().papers == papers and again.search("surface codes")
    again.close()


def test_a_real_model_change_offers_a_rebuild_that_keeps_the_papers(settings, small_corpus, tmp_path):
    # A user's own corpus, then another (loadable) embedding model: `rag ingest --rebuild` without paths
    # re-embeds the indexed papers; it does not replace them with the bundled corpus.
    a = Assistant(settings, embedder=HashEmbedder(dimension=32, name="hash-32"))
    a.ingest([small_corpus])
    titles = {p.title for p in a.index.catalog.all_papers()}
    a.close()
    b = Assistant(settings, embedder=HashEmbedder(dimension=48, name="hash-48"))
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        b.search("surface codes")
    report = b.ingest(rebuild=True)
    assert report.added == len(titles)
    assert {p.title for p in b.index.catalog.all_papers()} == titles
    assert b.index.catalog.get_meta("embedding_model") == "hash-48"
    assert b.search("surface codes")[0].title.startswith("Quantum Error Correction")
    b.close()


def test_failed_rebuild_leaves_the_index_as_it_was(settings, small_corpus, tmp_path):
    a = Assistant(settings, embedder=HashEmbedder())
    a.ingest([small_corpus])

    def fail(*_):
        raise RuntimeError("embedding server went away")

    with pytest.raises(RuntimeError):
        a.ingest([write_corpus(tmp_path / "other.jsonl", 300)], rebuild=True, progress=fail)
    assert a.stats().papers == 5 and a.search("surface codes")
    a.close()


@pytest.mark.slow
def test_kill_9_during_a_rebuild_keeps_the_old_index(tmp_path):
    home = tmp_path / "home"
    assert run(home, "ingest", str(write_corpus(tmp_path / "old.jsonl", 40)))["papers"] == 40
    newer = tmp_path / "new.jsonl"
    write_corpus(newer, 2000)
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(home), "rebuild-slowly", str(newer)])
    catalog = staging_dir(home / "index") / "catalog.sqlite"
    deadline = time.monotonic() + 300
    while not catalog.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # kill it mid-rebuild, not at its first file: the rebuild has no event to wait for
    assert process.poll() is None, "the rebuild ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    after = run(home, "search")
    assert after == {"ok": True, "papers": 40, "top": "Study 1 of marker zq1x"}
    # The next rebuild starts over and swaps in a complete index.
    assert run(home, "rebuild-slowly", str(write_corpus(tmp_path / "five.jsonl", 5)))["papers"] == 5
    assert not staging_dir(home / "index").exists() and not retired_dir(home / "index").exists()


@pytest.mark.parametrize("cut", ["before the first rename", "between the renames"])
def test_a_swap_cut_short_is_completed_by_the_next_open(settings, small_corpus, tmp_path, cut):
    a = Assistant(settings, embedder=HashEmbedder())
    a.ingest([small_corpus])
    a.close()
    index = settings.index_dir
    # Build a complete new index beside it (what `_rebuild` does before its swap).
    b = Assistant(Settings(home=tmp_path / "other"), embedder=HashEmbedder())
    b.ingest([write_corpus(tmp_path / "three.jsonl", 3)])
    b.close()
    shutil.copytree(b.index.dir, staging_dir(index))
    (staging_dir(index) / COMPLETE).write_text("complete\n")
    if cut == "between the renames":
        os.replace(index, retired_dir(index))
    c = Assistant(settings, embedder=HashEmbedder())
    if cut == "before the first rename":
        assert c.stats().papers == 5  # readers keep the current index until a writer swaps
        c.ingest([small_corpus])  # the next writer finishes the swap first
        assert c.stats().papers == 3 + 5
    else:
        assert c.stats().papers == 3
    c.close()


NAMESPACE_SCRIPT = """
import json, os, subprocess, sys
mount, corpus, script = sys.argv[1:4]
def rag(action, arg="-"):
    out = subprocess.run([sys.executable, "-c", script, mount + "/home", action, arg], capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"crash": out.stderr[-500:]}
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mount], check=True)
steps = {"built": rag("ingest", corpus)}
fd = os.open(mount + "/filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"0" * 4096)
except OSError:
    os.close(fd)
steps["search, disk full"] = rag("search")
steps["ingest, disk full"] = rag("ingest", sys.argv[4])
os.remove(mount + "/filler")
steps["search, space freed"] = rag("search")
subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
steps["search, read-only"] = rag("search")
steps["ingest, read-only"] = rag("ingest", sys.argv[4])
print(json.dumps(steps))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)  # its namespace runs six `rag` processes, within 600 s
def test_full_and_read_only_disks_are_named_and_lose_nothing(tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare -rm (a private mount namespace) to make a small disk")
    mount = tmp_path / "disk"
    mount.mkdir()
    corpus = write_corpus(tmp_path / "small.jsonl", 20)
    more = write_corpus(tmp_path / "more.jsonl", 400)
    result = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", NAMESPACE_SCRIPT, str(mount), str(corpus), SCRIPT, str(more)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    intact = {"ok": True, "papers": 20, "top": "Study 1 of marker zq1x"}
    assert steps["built"] == intact
    for name, outcome in steps.items():
        assert "crash" not in outcome, (name, outcome)
        if not outcome["ok"]:
            assert outcome["error"] == DataDirError.__name__, (name, outcome)
            assert "is damaged" not in outcome["message"] and "--rebuild" not in outcome["message"], (name, outcome)
    assert "no space left" in steps["ingest, disk full"]["message"]
    assert steps["search, space freed"] == intact
    assert "read-only" in steps["ingest, read-only"]["message"]


def test_a_locked_vector_database_is_waited_for_and_never_taken_for_damage(tmp_path, monkeypatch):
    # Chroma answers "database is locked" while another connection writes (seen once in the chat, with
    # an ingest beside a search, on a loaded machine). Damage makes an ingest delete the store to
    # re-embed it; a lock must only make it wait, or stop with the store untouched.
    import chromadb.errors

    from rag.store import vectors

    corpus = write_corpus(tmp_path / "corpus.jsonl", 12)
    settings = Settings(home=tmp_path / "home")
    assistant = Assistant(settings, embedder=HashEmbedder())
    assistant.ingest([corpus])
    papers, store = assistant.stats().papers, assistant.index.vectors_path
    files = sorted(p.relative_to(store) for p in store.rglob("*"))
    collection = type(assistant.index.vectors.collection)
    real_count = collection.count
    locked_calls = {"left": 2}

    def count_while_locked(self):
        if locked_calls["left"] > 0:
            locked_calls["left"] -= 1
            raise chromadb.errors.InternalError("error returned from database: (code: 5) database is locked")
        return real_count(self)

    monkeypatch.setattr(collection, "count", count_while_locked)
    report = assistant.ingest([corpus])  # two busy answers, then through: nothing re-embedded
    assert locked_calls["left"] == 0 and report.chunks_added == 0 and not report.problems
    assert assistant.stats().papers == papers

    monkeypatch.setattr(vectors, "BUSY_RETRY_S", 0.3)
    locked_calls["left"] = 10**6  # locked for good
    with pytest.raises(IndexBusyError, match="locked") as caught:
        assistant.ingest([corpus])
    assert "damaged" not in str(caught.value) and "re-embed" not in str(caught.value)
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == files  # the store is as it was
    monkeypatch.setattr(collection, "count", real_count)
    assistant.close()
    again = Assistant(settings, embedder=HashEmbedder())
    assert again.stats().papers == papers and again.search("Study 1 of marker zq1x", k=1)
    again.close()
