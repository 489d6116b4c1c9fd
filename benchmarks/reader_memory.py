"""Peak memory and time of reading a large JSON Lines corpus (what `rag ingest` does before embedding).

    python benchmarks/reader_memory.py [--mb 200] [--keep PATH]

Generates a JSONL of ~MB megabytes (titles and abstracts recombined from the bundled corpus's
sentences, seed 13, 1 record in 50 a duplicate title with another abstract), then reads it in a
fresh process with `rag.corpus.read_corpus` + `dedupe` (as `Assistant.ingest` does) and reports that process's peak RSS
(ru_maxrss) and the time taken. Run it against another checkout with PYTHONPATH=that/checkout.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, sys, time
started = time.perf_counter()
from rag.corpus import dedupe, read_corpus
read = read_corpus([sys.argv[1]])
try:  # as Assistant.ingest does (an older checkout's dedupe takes the papers only)
    papers = dedupe(read.papers, read.where, read.problems)
except (TypeError, AttributeError):
    papers = dedupe(read.papers)
seconds = time.perf_counter() - started
import rag.corpus
print(rag.corpus.__file__, len(read.papers), len(papers), len(read.problems),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, f"{seconds:.1f}")
"""


def generate(path: Path, megabytes: int) -> int:
    sys.path.insert(0, str(ROOT))
    from rag.chunking import split_sentences
    from rag.corpus import read_corpus

    papers = read_corpus(None).papers
    sentences = [s for p in papers for s in split_sentences(p.abstract)]
    words = [w for p in papers for w in p.title.split()]
    rng = random.Random(13)
    target, written, n = megabytes * 1_000_000, 0, 0
    titles: list[str] = []
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            if titles and n % 50 == 49:
                title = rng.choice(titles)  # the same title again, another abstract: replaces the first
            else:
                title = " ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + f" {n}"
                titles.append(title)
            abstract = " ".join(rng.choice(sentences) for _ in range(rng.randint(6, 12)))
            line = json.dumps({"title": title, "abstract": abstract, "year": 2020 + n % 6}) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="write the JSONL here (and reuse it if it exists)")
    args = parser.parse_args()
    path = args.keep or Path(tempfile.mkdtemp()) / "big.jsonl"
    if not path.exists():
        t = time.perf_counter()
        n = generate(path, args.mb)
        print(f"generated {path}: {path.stat().st_size / 1e6:.0f} MB, {n} records in {time.perf_counter() - t:.0f} s")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path.resolve())], capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir()).stdout  # not this checkout: PYTHONPATH decides
    module, read, unique, problems, rss_mb, seconds = out.split()
    print(f"module {module}")
    print(f"| file MB | records read | unique | problems | peak RSS MB | seconds |")
    print(f"| {path.stat().st_size / 1e6:.0f} | {read} | {unique} | {problems} | {rss_mb} | {seconds} |")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
