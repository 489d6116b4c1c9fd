"""Re-check recorded answers with the current citation checks, without generating them again.

`rag eval -o OUT.json` records every question's raw model answer. This script asks each question
again through the real pipeline (retrieval, passages, prompt, the real model's tokenizer) but,
where the record holds the model's raw answer to that exact question, streams that text instead
of running the model; the earlier turns of a follow-up are generated for real (at temperature 0
they are what the recorded run saw). So a change to the checks (rag/answer/citations.py, rag/text.py) is
measured on the same drafts in a minute or two instead of half an hour. The drafts were written for
the passages of the commit that recorded them: after a change to retrieval, the passages or the
prompts, a recorded [n] can point elsewhere, so re-run `rag eval` instead. Re-check the script's own
output (`-o`) to compare two versions of the checks on the same drafts.

    RAG_HOME=<bundled index> python benchmarks/recheck.py benchmarks/results-val-qwen1.5b-4970cb0.json \
        ../shared/eval/val.jsonl [-o OUT.json] [--show changed|lost|all]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from rag import Assistant
from rag.backends.llm import Generator, Message
from rag.evaluate import evaluate_answers
from rag.scoring import load_qa


class RecordedGenerator:
    """The real model's tokenizer and name; the recorded raw answer where there is one."""

    def __init__(self, real: Generator, raw_by_question: dict[str, str]):
        self.real = real
        self.name = real.name
        self.n_ctx = getattr(real, "n_ctx", 4096)
        self.raw_by_question = raw_by_question
        self.asked: str | None = None  # set before each question
        self.replayed = 0

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        raw = self.raw_by_question.get(self.asked or "")
        if raw is None:
            yield from self.real.stream(messages, max_tokens=max_tokens, stop=stop, temperature=temperature)
            return
        self.replayed += 1
        yield from re.findall(r"\S+\s*", raw)


def _pair(old: dict, new: dict, key: str) -> str:
    x, y = old.get(key), new.get(key)
    if x is None and y is None:
        return "-"
    return f"{'-' if x is None else round(x, 3)} -> {'-' if y is None else round(y, 3)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a `rag eval -o` file with records")
    parser.add_argument("qa", type=Path, help="the QA file it was made from")
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--show", choices=("changed", "lost", "all", "none"), default="changed")
    args = parser.parse_args()

    old = json.loads(args.results.read_text())
    records = {r["id"]: r for r in old["records"]}
    items = [i for i in load_qa(args.qa) if i.id in records]
    raws = {records[i.id]["question"]: records[i.id]["raw_answer"] for i in items if records[i.id]["raw_answer"]}

    assistant = Assistant()
    recorded = RecordedGenerator(assistant.load_generator(), raws)
    assistant._model.generator = recorded  # a benchmark's stand-in for the model

    def ask(question, history):
        recorded.asked = question
        return assistant.ask(question, history=history)

    new_records, scores = evaluate_answers(items, ask)
    changed = []
    for new in new_records:
        was = records[new.id]
        if (new.hit, new.refused, new.answer) != (was["hit"], was["refused"], was["answer"]):
            changed.append((was, new))
    for was, new in changed:
        lost = was["hit"] and not new.hit
        if args.show == "all" or args.show == "changed" or (args.show == "lost" and lost):
            print(f"{new.id} {new.type}: hit {was['hit']} -> {new.hit}, refused {was['refused']} -> {new.refused}")
            print(f"  raw:  {new.raw_answer[:300]}")
            print(f"  was:  {was['answer'][:300]}")
            print(f"  now:  {new.answer[:300]}")
            for d in new.dropped:
                print(f"  drop: {d[:200]}")
    print(f"replayed {recorded.replayed} recorded drafts; {len(changed)} answers changed", file=sys.stderr)
    rows = [("all", old["answers"]["all"], scores["all"].model_dump())] + [
        (t, old["answers"][t], s.model_dump()) for t, s in scores.items() if t != "all" and t in old["answers"]
    ]
    print("| type | hit was -> now | citation precision | refusal of unanswerable | false refusals |")
    print("|---|---|---|---|---|")
    for t, a, b in rows:
        cells = [
            _pair(a, b, key) for key in ("answer_hit_rate", "citation_precision", "refusal_accuracy", "false_refusals")
        ]
        print(f"| {t} | " + " | ".join(cells) + " |")
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "recheck_of": str(args.results),
                    "answers": {k: v.model_dump() for k, v in scores.items()},
                    "records": [r.model_dump() for r in new_records],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
