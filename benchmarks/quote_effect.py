"""Scores of a `rag eval -o` run as run (with the quotation fallback) and with each quoted answer
counted as the refusal it would have been without it (same drafts: the model ran once).

    python benchmarks/quote_effect.py results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.scoring import AnswerRecord, summarise_answers


def as_refusal(record: AnswerRecord) -> AnswerRecord:
    if not record.quoted:
        return record
    answerable = record.hit is not None
    update = {
        "refused": True,
        "hit": False if answerable else None,
        "cited_titles": [],
        "cited_gold": 0,
        "gold_cited": 0,
    }
    return record.model_copy(update=update)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    data = json.loads(args.results.read_text(encoding="utf-8"))
    records = [AnswerRecord.model_validate(r) for r in data["records"]]
    for name, chosen in (("with", records), ("without", [as_refusal(r) for r in records])):
        print(f"== {name} the quotation fallback")
        for kind in ["all", *sorted({r.type for r in chosen})]:
            group = chosen if kind == "all" else [r for r in chosen if r.type == kind]
            s = summarise_answers(group)
            print(
                f"{kind:14s} n={s.n:3d} hit={_f(s.answer_hit_rate)} precision={_f(s.citation_precision)} "
                f"recall={_f(s.citation_recall)} refusal={_f(s.refusal_accuracy)} "
                f"false_refusals={_f(s.false_refusals)} quoted={sum(r.quoted for r in group)}"
            )
    quoted = [r for r in records if r.quoted]
    print(
        f"quoted answers: {len(quoted)}; hits among them: {sum(bool(r.hit) for r in quoted)}; citing a gold "
        f"paper: {sum(r.cited_gold > 0 for r in quoted)}; unanswerable quoted: {sum(r.hit is None for r in quoted)}"
    )


if __name__ == "__main__":
    main()
