"""Peak memory and time of reading a large JSON Lines corpus (what `rag ingest` does before embedding).

    python benchmarks/reader_memory.py [--mb 200] [--keep PATH] [--arxiv] [--ingest]

Generates a JSONL of ~MB megabytes (titles and abstracts recombined from the bundled corpus's
sentences, seed 13, 1 record in 50 a duplicate title with another abstract; with `--arxiv`, records
in the arXiv metadata snapshot's format, every field of it, and 1 in 100 an exact copy of an earlier
record), then in a fresh process:
- by default, reads it with `rag.corpus.readers.read_corpus` + `dedupe` (the whole-file read `Assistant.ingest`
  did before it streamed);
- with `--ingest`, runs `Assistant.ingest` on it (reading, de-duplication against the catalog,
  catalog commits, the writer thread) with the costly parts that do not depend on the reader left
  out: one chunk per paper, 8-d constant vectors, Chroma's add/delete and the final BM25 build
  stubbed (their memory is the vector store's and BM25's, not the reader's);
and reports that process's peak RSS (ru_maxrss) and the time taken. Run it against another
checkout with PYTHONPATH=that/checkout.
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
from rag.corpus.readers import dedupe, read_corpus
read = read_corpus([sys.argv[1]])
try:  # as Assistant.ingest does (an older checkout's dedupe takes the papers only)
    papers = dedupe(read.papers, read.where, read.problems)
except (TypeError, AttributeError):
    papers = dedupe(read.papers)
seconds = time.perf_counter() - started
import rag.corpus.readers
print(rag.corpus.readers.__file__, len(read.papers), len(papers), len(read.problems),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, f"{seconds:.1f}")
"""


INGEST_CHILD = """
import resource, sys, time
import numpy as np
import rag.ingest.pipeline as rag_index
from rag import Assistant, Settings
from rag.store.index import Index
from rag.types import Chunk
from rag.store.vectors import VectorStore

class ConstantEmbedder:
    name, dimension, max_tokens = "constant-8d", 8, 256
    def count_tokens(self, texts): return [1 for _ in texts]
    def encode(self, texts, progress=None):
        if progress: progress(len(texts))
        return np.full((len(texts), 8), 8 ** -0.5, dtype=np.float32)
    def encode_query(self, text): return self.encode([text])[0]

rag_index.chunk_paper = lambda paper, *args: [Chunk(paper_id=paper.paper_id, position=0, title=paper.title, text=paper.title)]
VectorStore.add = VectorStore.delete = lambda self, *args, **kwargs: None
Index.lexical = property(lambda self: None)
started = time.perf_counter()
a = Assistant(Settings(home=sys.argv[2]), embedder=ConstantEmbedder())
report = a.ingest([sys.argv[1]])
seconds = time.perf_counter() - started
import rag.corpus.readers
print(rag.corpus.readers.__file__, report.papers_read, report.unique_papers, len(report.problems),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, f"{seconds:.1f}")
"""


def generate_arxiv(path: Path, megabytes: int) -> int:
    """Records in the arXiv snapshot's format; 1 in 50 reuses a title with another abstract, 1 in 100
    repeats an earlier record exactly."""
    sys.path.insert(0, str(ROOT))
    from rag.corpus.chunking import split_sentences
    from rag.corpus.readers import read_corpus
    from rag.testing import arxiv_record

    papers = read_corpus(None).papers
    sentences = [s for p in papers for s in split_sentences(p.abstract)]
    words = [w for p in papers for w in p.title.split()]
    rng = random.Random(13)
    target, written, n = megabytes * 1_000_000, 0, 0
    earlier: list[str] = []
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            if earlier and n % 100 == 99:
                line = rng.choice(earlier)
            else:
                title = " ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + f" {n}"
                if n % 50 == 49:
                    title = json.loads(rng.choice(earlier))["title"]
                abstract = " ".join(rng.choice(sentences) for _ in range(rng.randint(6, 12)))
                line = json.dumps(arxiv_record(n, abstract=abstract, title=title)) + "\n"
                if len(earlier) < 10_000:
                    earlier.append(line)
            f.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    return n


def generate(path: Path, megabytes: int) -> int:
    sys.path.insert(0, str(ROOT))
    from rag.corpus.chunking import split_sentences
    from rag.corpus.readers import read_corpus

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
    parser.add_argument("--arxiv", action="store_true", help="records in the arXiv metadata snapshot's format")
    parser.add_argument("--ingest", action="store_true", help="measure Assistant.ingest (see above), not read+dedupe")
    args = parser.parse_args()
    path = args.keep or Path(tempfile.mkdtemp()) / "big.jsonl"
    if not path.exists():
        t = time.perf_counter()
        n = (generate_arxiv if args.arxiv else generate)(path, args.mb)
        print(f"generated {path}: {path.stat().st_size / 1e6:.0f} MB, {n} records in {time.perf_counter() - t:.0f} s")
    with tempfile.TemporaryDirectory() as home:
        child = [INGEST_CHILD, str(path.resolve()), home] if args.ingest else [CHILD, str(path.resolve())]
        out = subprocess.run(
            [sys.executable, "-c", *child], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
        ).stdout  # not this checkout: PYTHONPATH decides
    module, read, unique, problems, rss_mb, seconds = out.split()
    print(f"module {module}")
    print("| file MB | records read | unique | problems | peak RSS MB | seconds |")
    print(f"| {path.stat().st_size / 1e6:.0f} | {read} | {unique} | {problems} | {rss_mb} | {seconds} |")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
