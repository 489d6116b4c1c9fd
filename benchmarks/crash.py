"""kill -9 trials: `rag ingest` of the bundled corpus killed at random moments, then finished.

    python benchmarks/crash.py [--trials 10] [--seed 1]

Each trial starts `rag ingest` in a new process on the same data dir and kills it (SIGKILL): one
trial in four at a random moment 0.5-8 s after it started (start-up, reading, first embeddings),
the others at a random moment 0-6 s after the run committed its first batch (embedding the next
batch, writing vectors, or committing). After
each kill it counts the papers committed before the kill that are still there, and checks the
index still opens for search. A last `rag ingest` finishes; the result is compared with a clean
ingest in another data dir (same paper ids, chunk ids, and one vector per chunk).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rag(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def papers(home: Path) -> set[str]:
    from rag.store.catalog_base import committed_paper_ids

    return committed_paper_ids(home / "index" / "catalog.sqlite")


def ids(home: Path) -> tuple[set[str], set[str], set[str]]:
    from rag import Assistant, Settings

    a = Assistant(Settings(home=home))
    try:
        catalog = a.index.catalog
        return catalog.paper_ids(), set(catalog.all_chunk_ids()), set(a.index.vectors.all_ids())
    finally:
        a.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rag-crash-"))
    home, clean = work / "killed", work / "clean"
    os.environ.setdefault("RAG_MODELS_HOME", str(work / "models"))
    try:
        rows = []
        for trial in range(1, args.trials + 1):
            before = papers(home)
            proc = rag(home, "ingest")
            started = time.perf_counter()
            if trial % 4 != 1:
                while len(papers(home)) <= len(before) and proc.poll() is None:
                    time.sleep(0.1)
            if proc.poll() is not None:
                break  # this run finished the corpus: nothing left to interrupt
            time.sleep(rng.uniform(0.5, 8.0) if trial % 4 == 1 else rng.uniform(0.0, 6.0))
            delay = time.perf_counter() - started
            seen = papers(home)
            proc.kill()
            proc.wait()
            after = papers(home)
            lost = len(seen - after)
            searchable = True
            if after:  # (on an empty data dir `rag search` would build the index itself)
                probe = subprocess.run(
                    [sys.executable, "-m", "rag.cli", "--home", str(home), "search", "sparse retrieval", "-k", "1"],
                    capture_output=True,
                    text=True,
                )
                searchable = probe.returncode == 0
            rows.append(
                {
                    "trial": trial,
                    "killed_after_s": round(delay, 2),
                    "papers_before": len(before),
                    "papers_at_kill": len(seen),
                    "papers_after": len(after),
                    "lost": lost,
                    "searchable": searchable,
                    "exit": proc.returncode,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        finish = rag(home, "ingest", "--json")
        out, _err = finish.communicate()
        report = json.loads(out)
        subprocess.run(
            [sys.executable, "-m", "rag.cli", "--home", str(clean), "ingest"], check=True, capture_output=True
        )
        got, want = ids(home), ids(clean)
        summary = {
            "trials": len(rows),
            "trials_losing_papers": sum(1 for r in rows if r["lost"]),
            "trials_unsearchable": sum(1 for r in rows if not r["searchable"]),
            "final_ingest": {k: report[k] for k in ("added", "unchanged", "repaired", "orphans_removed")},
            "same_papers_as_clean": got[0] == want[0],
            "same_chunks_as_clean": got[1] == want[1],
            "one_vector_per_chunk": got[2] == got[1],
        }
        print(json.dumps(summary, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
