"""Why prefill while typing saves less than hoped: how much of the prompt prepared for a draft the sent question can reuse.

    RAG_HOME=<data dir> HF_HUB_OFFLINE=1 python benchmarks/prefill_reuse.py QA.jsonl [QA.jsonl ...] [--out FILE.json]

For each answerable-looking question of the QA files (follow-ups aside; read at run time, never
copied here), the draft is the question without its last word (what the chat last prepared when
the user typed the last word and pressed Enter before the preparation of the whole question got
far). Both are retrieved as an answer would be, their passages built, and the prompt up to the
question tokenized with the model's own chat template. Reported: how often the passages are the
same (text and order), how often the same papers come in the same order / as the same set, and the
share of the sent question's prompt prefix whose tokens equal the draft's from the start (what
llama.cpp's KV cache can keep), with the passages in rank order (what the assistant does) and,
as an idea measured but not adopted, with the passages identical to the draft's moved first in the
draft's order.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from rag import Assistant, Hit
from rag.answer.answering import QUESTION_SLOT, render_prefix
from rag.backends.llm import _common_prefix
from rag.scoring import load_qa


def prepared_first(final: list[Hit], prepared: list[Hit]) -> list[Hit]:
    """`final`'s passages, those equal to the prepared ones first, in the prepared order."""
    by_key = {(h.paper_id, h.text): h for h in final}
    head = []
    for hit in prepared:
        same = by_key.get((hit.paper_id, hit.text))
        if same is None:
            break
        head.append(same)
    return head + [h for h in final if h not in head]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qa", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    assistant = Assistant()
    generator = assistant.load()
    prompts = assistant.prompts

    def passages(question: str) -> list[Hit] | None:
        resolved, hits = assistant.flow.retrieve(question, [])
        if assistant.flow.gated(resolved, hits):
            return None
        return assistant.flow.passages(question, resolved, hits, generator)

    def prefix_tokens(hits: list[Hit]) -> list[int]:
        return generator._tokens(generator.llm, render_prefix(prompts, hits), QUESTION_SLOT)

    results: dict[str, Any] = {}
    for path in args.qa:
        counts = {"questions": 0, "same_passages": 0, "same_papers_in_order": 0, "same_paper_set": 0}
        tokens, rank, reordered = [], [], []
        for item in load_qa(path):
            words = item.question.split(" ")
            if item.history or len(words) < 3:
                continue
            final, draft = passages(item.question), passages(" ".join(words[:-1]))
            if final is None or draft is None:  # refused without the model: nothing to prefill
                continue
            counts["questions"] += 1
            counts["same_passages"] += [(h.paper_id, h.text) for h in final] == [(h.paper_id, h.text) for h in draft]
            counts["same_papers_in_order"] += [h.paper_id for h in final] == [h.paper_id for h in draft]
            counts["same_paper_set"] += {h.paper_id for h in final} == {h.paper_id for h in draft}
            prepared, sent = prefix_tokens(draft), prefix_tokens(final)
            tokens.append(len(sent))
            rank.append(_common_prefix(prepared, sent) / len(sent))
            moved = prefix_tokens(prepared_first(final, draft))
            reordered.append(_common_prefix(prepared, moved) / len(moved))
        results[str(path)] = {
            **counts,
            "median_prefix_tokens": statistics.median(tokens),
            "reused_share_rank_order": {
                "median": round(statistics.median(rank), 2),
                "mean": round(statistics.mean(rank), 2),
            },
            "reused_share_prepared_first": {
                "median": round(statistics.median(reordered), 2),
                "mean": round(statistics.mean(reordered), 2),
            },
        }
        print(path, json.dumps(results[str(path)]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
