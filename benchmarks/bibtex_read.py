"""Time reading a BibTeX corpus of N entries made from the bundled abstracts, a share of them with the
LaTeX reference managers write (accents, inline math, escaped percent signs, citations).

    python benchmarks/bibtex_read.py --entries 5000 --latex-share 0.3

Run it with PYTHONPATH=<a checkout> to compare two versions of the reader on the same file.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from rag.corpus.readers import read_corpus, read_file

LATEX = [r"G{\"o}del", r"$\alpha$-nets", r"10\% fewer", r"as in~\cite{prior}", r"\emph{sparse}", r"$O(n \log n)$"]


def make_bib(entries: int, latex_share: float, seed: int = 0) -> str:
    rng = random.Random(seed)
    papers = read_corpus().papers
    out = []
    for i in range(entries):
        paper = papers[i % len(papers)]
        words = paper.abstract.replace("{", "(").replace("}", ")").split()  # a stray brace is bad BibTeX
        if rng.random() < latex_share:
            for macro in rng.sample(LATEX, 2):
                words.insert(rng.randrange(len(words)), macro)
        title = f"{paper.title} ({i})"
        out.append(f"@article{{k{i},\n  title = {{{title}}},\n  year = 2024,\n  abstract = {{{' '.join(words)}}}\n}}\n")
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--latex-share", type=float, default=0.3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.bib"
        path.write_text(make_bib(args.entries, args.latex_share), encoding="utf-8")
        start = time.perf_counter()
        result = read_file(path)
        seconds = time.perf_counter() - start
    print(f"{len(result.papers)} papers, {len(result.problems)} problems, {seconds:.2f} s")


if __name__ == "__main__":
    main()
