"""What the model is shown: does the prompt hold the answer, and how many tokens does it cost?

    python benchmarks/context.py [../shared/eval/dev.jsonl] [--budgets 120 160 200 450] [--sentences 1 2 3]

No text is generated, so a setting can be tried in seconds: for each budget (RAG_CONTEXT_TOKENS)
and sentence cap (RAG_CONTEXT_SENTENCES) it reports, over the answerable items, how often the
passages hold an `answer_any` string and a gold paper, and the size of the user message that the
model has to prefill (the system prompt is cached). Prefill dominates the time to first token.
Follow-ups are searched with their last history question prepended (the cheap rewrite).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag import Assistant
from rag.answer.answering import render_messages
from rag.answer.passages import build_passages
from rag.scoring import load_qa, median, percentile
from rag.types import normalise_text

DEFAULT_QA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qa", nargs="?", type=Path, default=DEFAULT_QA)
    parser.add_argument("--budgets", type=int, nargs="+", default=[120, 160, 200, 450])
    parser.add_argument("--sentences", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    items = [i for i in load_qa(args.qa) if i.answerable]
    assistant = Assistant()
    assistant.ensure_index()
    generator = assistant.load_generator()
    searched = []
    for item in items:
        question = " ".join([*item.history[-1:], item.question])
        searched.append((item, question, assistant.search(question, k=assistant.settings.answer.context_passages)))
    print(f"{args.qa.name}: {len(items)} answerable items, top {assistant.settings.answer.context_passages} papers\n")
    print(
        "| passage tokens | sentences a paper | answer in prompt | gold paper in prompt | user msg tokens p50 | p95 |"
    )
    print("|---|---|---|---|---|---|")
    for budget in args.budgets:
        for cap in args.sentences:
            settings = assistant.settings.model_copy()
            settings.set("context_tokens", budget, "--budgets")
            settings.set("context_sentences", cap, "--sentences")
            answer_in, gold_in, sizes = 0, 0, []
            for item, question, hits in searched:
                passages = build_passages(question, hits, assistant.index.catalog, generator, settings)
                shown = " ".join(f"{p.title} {p.text}" for p in passages).lower()
                answer_in += any(a.lower() in shown for a in item.answer_any)
                gold = {normalise_text(t) for t in item.gold_titles}
                gold_in += any(normalise_text(p.title) in gold for p in passages)
                user = render_messages(assistant.prompts, question, passages)[-1]["content"]
                sizes.append(generator.count_tokens(user))
            n = len(searched)
            print(
                f"| {budget} | {cap} | {answer_in / n:.2f} | {gold_in / n:.2f} | {median(sizes):.0f} | "
                f"{percentile(sizes, 0.95):.0f} |"
            )


if __name__ == "__main__":
    main()
