"""The prompt-injection filter on the bundled corpus (false positives) and the hostile test set (misses).

    python benchmarks/injection_filter.py [--show] [--code CHECKOUT] [--corpus PATH]

"before" is the filter that lived in rag/answer/answering.py up to commit bee2126 (`_INSTRUCTION`, a
sentence was dropped if the regex matched it); "after" is `rag.safety.passage_sentences`. On the
bundled corpus every dropped sentence is a false positive (no abstract there addresses the model);
on tests/data/hostile.jsonl an injected sentence that reaches the model is a miss, a dropped
sentence of a paper *about* injections is a false positive.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

_CODE = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _CODE)

from rag.corpus.chunking import split_sentences  # noqa: E402
from rag.corpus.readers import read_corpus  # noqa: E402
from rag.safety import normalise_for_matching, passage_sentences  # noqa: E402

HOSTILE = Path(__file__).resolve().parent.parent / "tests" / "data" / "hostile.jsonl"
VARIANTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "injection_variants.jsonl"

# rag/answer/answering.py at bee2126, verbatim.
OLD = re.compile(
    r"\b(?:ignore|disregard|forget)\b[^.]{0,30}\b(?:instructions?|questions?|passages?|context|prompt)\b"
    r"|\b(?:previous|above|prior) instructions\b|\b(?:never|do not|don't) say\b|\balways answer\b"
    r"|^(?:system|assistant|important note[^:]{0,30})\s*:|^(?:reply|respond|answer|say)\s+(?:that|with|only)\b|^cite\b"
    r"|\bcite \[\d",
    re.IGNORECASE,
)


def old_kept(abstract: str) -> list[str]:
    return [s for s in split_sentences(abstract) if not OLD.search(s)]


def dropped(abstract: str, kept: list[str]) -> list[str]:
    """The sentences of `abstract` not shown whole (the new filter may keep part of a sentence)."""
    shown = " ".join(kept)
    return [
        s
        for s in split_sentences(abstract)
        if s.replace("[", "(").replace("]", ")") not in shown.replace("[", "(").replace("]", ")")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print every dropped sentence")
    parser.add_argument("--code", help="a checkout whose rag package to measure (default: this one)")
    parser.add_argument("--corpus", nargs="*", type=Path, help="corpus files or folders (default: the bundled corpus)")
    args = parser.parse_args()
    print(f"code: {_CODE}")

    papers = read_corpus(args.corpus or None).papers
    sentences = sum(len(split_sentences(p.abstract)) for p in papers)
    rows = []
    for name, keep in (("before", old_kept), ("after", passage_sentences)):
        lost = [(p.title, s) for p in papers for s in dropped(p.abstract, keep(p.abstract))]
        misses = false_pos = injected = benign = 0
        for line in HOSTILE.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            shown = normalise_for_matching(" ".join(keep(record["abstract"])))
            for sentence in record["injected"]:
                injected += 1
                misses += normalise_for_matching(sentence)[:25] in shown
            for sentence in record["keep"]:
                benign += 1
                false_pos += sentence not in " ".join(keep(record["abstract"]))
        variant_misses = variants = variant_false_pos = variant_benign = 0
        for line in VARIANTS.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            kept = keep(record["abstract"])
            shown = normalise_for_matching(" ".join(kept))
            for sentence in record["injected"]:
                variants += 1
                variant_misses += normalise_for_matching(sentence)[:25] in shown
                if args.show and normalise_for_matching(sentence)[:25] in shown:
                    print(f"  {name} missed ({record['kind']}): {sentence}")
            for sentence in record["keep"]:
                variant_benign += 1
                variant_false_pos += sentence not in " ".join(kept)
        rows.append(
            (
                name,
                len(lost),
                misses,
                injected,
                false_pos,
                benign,
                variant_misses,
                variants,
                variant_false_pos,
                variant_benign,
            )
        )
        if args.show:
            for title, sentence in lost:
                print(f"  {name} dropped: {title[:50]!r}: {sentence}")
    print(f"bundled corpus: {len(papers)} papers, {sentences} sentences")
    print(
        "| filter | corpus sentences dropped (false positives) | hostile injections reaching the model | "
        "hostile sentences to keep that were dropped | issue-24 variants reaching the model | "
        "issue-24 sentences to keep that were dropped |"
    )
    print("|---|---|---|---|---|---|")
    for name, lost, misses, injected, false_pos, benign, vm, vn, vfp, vb in rows:
        print(
            f"| {name} | {lost} of {sentences} | {misses} of {injected} | {false_pos} of {benign} | {vm} of {vn} "
            f"| {vfp} of {vb} |"
        )


if __name__ == "__main__":
    main()
