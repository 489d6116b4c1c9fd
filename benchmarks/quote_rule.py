"""Which questions the quotation fallback would answer, and whether the quote cites the right paper.

For every question of a QA file (follow-ups aside), retrieve and choose passages as `rag ask` does, then ask
`rag.answer.answering.best_quote` for the sentence it would quote if the model's own sentences were all dropped;
no model is run (only its tokenizer, to size the passages). Per question type: questions quoted, quotes
citing a gold paper, quotes holding an expected answer (`answer_any`). An unanswerable question quoted
would be a refusal lost. `--rule` also scores other definitions of a confident passage (`rag.answer.answering.
confident`) on the same passages.

    RAG_HOME=<bundled index> python benchmarks/quote_rule.py ../shared/eval/dev.jsonl [--rule all]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import rag.answer.answering as answering
from rag import Assistant
from rag.answer.questions import clean_question
from rag.scoring import load_qa
from rag.types import Hit


def _firsts(h: Hit) -> list[bool]:
    return [h.dense_rank == 1, h.lexical_rank == 1, h.paper_rank == 1]


RULES: dict[str, Callable[[Hit], bool]] = {
    "current": answering.confident,
    "named, or 2 of 3 searches first, or cosine>=0.6": lambda h: (
        h.named or sum(_firsts(h)) >= 2 or (h.dense_score or 0.0) >= 0.6
    ),
    "named and first once, or 2 of 3 first, or cosine>=0.6": lambda h: (
        (h.named and any(_firsts(h))) or sum(_firsts(h)) >= 2 or (h.dense_score or 0.0) >= 0.6
    ),
    "named and first once, or 3 of 3 first, or cosine>=0.6": lambda h: (
        (h.named and any(_firsts(h))) or all(_firsts(h)) or (h.dense_score or 0.0) >= 0.6
    ),
    "named and first once, or cosine>=0.6": lambda h: (h.named and any(_firsts(h))) or (h.dense_score or 0.0) >= 0.6,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("qa", type=Path, nargs="+")
    parser.add_argument("--rule", choices=("current", "all"), default="current")
    args = parser.parse_args()
    rules = RULES if args.rule == "all" else {"current": RULES["current"]}
    assistant = Assistant()
    generator = assistant.load_generator()
    # rule -> type -> [questions, quoted, quoting a gold paper, holding an expected answer]
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    for path in args.qa:
        for item in load_qa(path):
            if item.type == "followup":
                continue
            text, _ = clean_question(item.question)
            resolved, hits = assistant.flow.retrieve(text, [])
            passages = (
                [] if assistant.flow.gated(resolved, hits) else assistant.flow.passages(text, resolved, hits, generator)
            )
            for name, rule in rules.items():
                row = counts[name][item.type]
                row[0] += 1
                quote = answering.best_quote(resolved.text, passages, assistant.embedder, trusted=rule)
                if quote is None:
                    continue
                row[1] += 1
                row[2] += passages[quote.passage].title in item.gold_titles
                row[3] += any(a.lower() in quote.sentence.lower() for a in item.answer_any)
    print("| rule | type | questions | quoted | gold paper | expected answer |")
    print("|---|---|---|---|---|---|")
    for name, by_type in counts.items():
        for kind, (n, quoted, gold, hit) in sorted(by_type.items()):
            print(f"| {name} | {kind} | {n} | {quoted} | {gold} | {hit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
