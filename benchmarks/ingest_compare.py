"""Ingest speed of a user's own corpus with two versions of the code (or settings), side by side.

Each run is a new process (`python -m rag.cli ingest FILE`) into a new data dir; the runs alternate
between the variants so that the machine's load falls on both alike. The models dir is shared (its
one-time exports are not ingest work: run one ingest first to make them).

    python benchmarks/ingest_compare.py corpus.jsonl --variant old=/path/to/old/checkout \\
        --variant new=. --variant new-no-paper=.:RAG_PAPER_EMBEDDING_MODEL= --rounds 2 -o out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--variant", action="append", required=True, help="NAME=CODE_DIR[:VAR=VALUE,...]")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    variants = []
    for spec in args.variant:
        name, rest = spec.split("=", 1)
        code, _, extra = rest.partition(":")
        env = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
        variants.append((name, Path(code).resolve(), env))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for _ in range(args.rounds):
        for name, code, extra in variants:
            with tempfile.TemporaryDirectory() as home:
                env = dict(os.environ, PYTHONPATH=str(code), RAG_HOME=home, HF_HUB_OFFLINE="1", **extra)
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-m", "rag.cli", "ingest", str(args.corpus)],
                    env=env,
                    cwd=code,  # `python -m` puts the working dir first on sys.path: it must be the variant's
                    capture_output=True,
                    text=True,
                    check=True,
                )
                seconds = time.perf_counter() - t0
                papers = int(re.search(r"(\d+) added", out.stdout + out.stderr).group(1))
                row = {
                    "seconds": round(seconds, 1),
                    "papers": papers,
                    "papers_per_s": round(papers / seconds, 2),
                    "load": round(load, 2),
                }
                results[name].append(row)
                print(name, row, flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
