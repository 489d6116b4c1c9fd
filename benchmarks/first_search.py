"""The first search of a new process, with and without `Assistant.load` (which opens the index, the
BM25 arrays and the embedder while the model loads).

    RAG_HOME=<data dir with an index> python benchmarks/first_search.py [--runs 5]

Each run is a new process that loads the default model either with `load_generator()` (the model
only) or with `load()` (the model and, side by side, what the first search needs), then searches
twice. The two kinds alternate so that both see the same machine. Reports medians of: the load
step, the first search, the second search, and load + first search (what the user waits for before
the first answer can start), with the 1-minute load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, sys, time
from rag import Assistant
a = Assistant()
t0 = time.perf_counter()
a.load() if sys.argv[1] == "load" else a.load_generator()
t1 = time.perf_counter()
a.search("How do vision transformers learn from masked patches?")
t2 = time.perf_counter()
a.search("Which methods shrink the memory of a key-value cache?")
t3 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "first": t2 - t1, "second": t3 - t2}))
"""


def run(kind: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, kind], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    results: dict[str, list[dict[str, float]]] = {"load_generator": [], "load": []}
    run("load")  # one unrecorded run so that both kinds start with the files in the page cache
    for _ in range(args.runs):
        for kind in results:
            results[kind].append(run(kind))
    print(f"{args.runs} runs each; load average {start_load:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"{'model loaded with':18} {'load s':>8} {'1st search s':>13} {'2nd search s':>13} {'load + 1st s':>13}")
    for kind, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("load", "first", "second")}
        both = statistics.median(r["load"] + r["first"] for r in rows)
        print(f"{kind + '()':18} {med['load']:8.2f} {med['first']:13.3f} {med['second']:13.3f} {both:13.2f}")


if __name__ == "__main__":
    main()
