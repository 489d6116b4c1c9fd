"""Time to first token in the chat with and without prefill while typing, side by side in one run.

    HF_HUB_OFFLINE=1 python benchmarks/prefill_typing.py [QA.jsonl] [--questions 18] [--out FILE.json]

`--questions` questions spread over the QA file (follow-ups aside: they need a conversation) is typed in real time
through the library API as the chat does it: characters at `--cps` per second, a pause of `--pause`
seconds after each word (the draft is then still for longer than the chat's 0.4 s debounce, so
`Assistant.prepare` runs for it, in a thread that the next keystroke cancels), and Enter
`--enter-after` seconds after the last character. The question is then asked and the clock runs from
Enter to the first token (the answer is stopped there). Without prefill the same question is asked
with nothing prepared. Two chat behaviours are compared: "keep" (a keystroke leaves the prefill in
flight running; the next still draft's preparation replaces it, keeping the common prefix: what the
chat does) and
"abandon" (every keystroke stops it). The three runs rotate in order per question, and before each run the KV cache is
brought back to the system prompt (as after an earlier, different question), so neither run
inherits the other's prompt.

Reported: median time to first token with and without, their ratio, how many questions found the
passages' prefix in the cache (prompt tokens reused beyond the system prompt), and tokens reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag import Assistant, Prepared
from rag.answer.answering import QUESTION_SLOT, render_prefix
from rag.backends.llm import LlamaCppGenerator
from rag.scoring import load_qa

DEFAULT_QA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"
DEBOUNCE = 0.4  # the chat's
# "keep": a keystroke leaves the prefill in flight running, the next still draft replaces it;
# "abandon": every keystroke stops it.
RUNS = ("without", "keep", "abandon")


@dataclass
class Keystroke:
    at: float  # seconds after the first key
    draft: str  # the input's text after it


def keystrokes(question: str, cps: float, pause: float) -> list[Keystroke]:
    """The typing of `question`: one character every 1/cps s, plus `pause` s after each word."""
    strokes, at = [], 0.0
    for i in range(1, len(question) + 1):
        strokes.append(Keystroke(at, question[:i]))
        at += 1 / cps
        if question[i - 1] == " ":
            at += pause
    return strokes


@dataclass
class Typing:
    """The chat's debounce: a draft still for DEBOUNCE s is prepared in a thread (which stops the
    preparation of the previous draft); with `abandon`, every keystroke stops it already."""

    assistant: Assistant
    abandon: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    prepared: list[object] = field(default_factory=list)

    def key(self) -> None:
        if self.abandon:
            self.cancel.set()

    def enter(self) -> None:
        self.cancel.set()

    def still(self, draft: str) -> None:
        self.cancel = cancel = threading.Event()

        def run() -> None:
            self.prepared.append(self.assistant.prepare(draft, cancel=cancel))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)


def reset_cache(assistant: Assistant, generator: LlamaCppGenerator) -> None:
    """The KV cache as an earlier, different question leaves it: the system prompt and no passages."""
    generator.prefill(render_prefix(assistant.prompts, []), upto=QUESTION_SLOT)


def first_token(assistant: Assistant, question: str, started: float) -> float | None:
    """Seconds from `started` (Enter) to the first token; None if refused without the model."""
    events = assistant.events(question)
    try:
        for event in events:
            if event.kind == "token":
                return time.perf_counter() - started
    finally:
        events.close()  # stops the model after its first token
    return None


def with_prefill(assistant: Assistant, question: str, args: argparse.Namespace, row: dict, run: str) -> float | None:
    typing = Typing(assistant, abandon=run == "abandon")
    strokes = keystrokes(question, args.cps, args.pause)
    start = time.perf_counter()
    for i, stroke in enumerate(strokes):
        time.sleep(max(0.0, start + stroke.at - time.perf_counter()))
        typing.key()
        next_at = strokes[i + 1].at if i + 1 < len(strokes) else stroke.at + args.enter_after
        if next_at - stroke.at >= DEBOUNCE:
            time.sleep(max(0.0, start + stroke.at + DEBOUNCE - time.perf_counter()))
            typing.still(stroke.draft)
    time.sleep(max(0.0, start + strokes[-1].at + args.enter_after - time.perf_counter()))
    enter = time.perf_counter()
    typing.enter()  # the chat cancels the preparation in flight, the answer waits for its step
    ttft = first_token(assistant, question, enter)
    for thread in typing.threads:
        thread.join()
    reports = [p.prefill for p in typing.prepared if isinstance(p, Prepared) and p.prefill is not None]
    row[f"prepares_{run}"] = len(typing.threads)
    row[f"prefills_complete_{run}"] = sum(r.complete for r in reports)
    row[f"prefill_tokens_evaluated_{run}"] = sum(r.evaluated for r in reports)
    return ttft


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qa", nargs="?", type=Path, default=DEFAULT_QA)
    parser.add_argument("--questions", type=int, default=14)
    parser.add_argument("--cps", type=float, default=5.0, help="characters per second")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds of pause after each word")
    parser.add_argument("--enter-after", type=float, default=0.5, help="seconds from the last character to Enter")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    candidates = [item for item in load_qa(args.qa) if item.type != "followup"]
    step = max(1, len(candidates) // args.questions)  # spread over the file: every type of question
    items = candidates[::step][: args.questions]
    assistant = Assistant()
    generator = assistant.load_generator()
    if not isinstance(generator, LlamaCppGenerator):
        sys.exit("prefill needs an in-process llama.cpp model (not openai:NAME)")
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"{len(items)} questions, load average {load}", file=sys.stderr)
    assistant.ask(items[0].question)  # warm: retrieval's lazy loading, the model's first run
    rows = []
    for n, item in enumerate(items):
        row: dict[str, object] = {"id": item.id, "type": item.type, "chars": len(item.question)}
        order = RUNS[n % len(RUNS) :] + RUNS[: n % len(RUNS)]  # each run goes first as often
        for run in order:
            reset_cache(assistant, generator)
            if run == "without":
                row["ttft_without"] = first_token(assistant, item.question, time.perf_counter())
            else:
                row[f"ttft_{run}"] = with_prefill(assistant, item.question, args, row, run)
            use = generator.last_prompt
            row[f"prompt_tokens_{run}"] = use.tokens if use else None
            row[f"reused_{run}"] = use.reused if use else None
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    answered = [r for r in rows if all(r[f"ttft_{run}"] is not None for run in RUNS)]
    without_s = [float(r["ttft_without"]) for r in answered]  # type: ignore[arg-type]
    summary: dict[str, object] = {
        "questions": len(rows),
        "answered_by_the_model": len(answered),
        "typing": {"cps": args.cps, "pause_after_word_s": args.pause, "enter_after_s": args.enter_after},
        "median_ttft_without_s": median(without_s),
        "median_prompt_tokens": median([float(r["prompt_tokens_without"]) for r in answered]),  # type: ignore[arg-type]
        "median_tokens_reused_without": median([float(r["reused_without"]) for r in answered]),  # type: ignore[arg-type]
    }
    for run in RUNS[1:]:
        with_s = [float(r[f"ttft_{run}"]) for r in answered]  # type: ignore[arg-type]
        # The prefix was reused when the answer found more than the system prompt in the cache.
        reused = [r for r in answered if int(r[f"reused_{run}"]) > int(r["reused_without"])]  # type: ignore[call-overload]
        summary[run] = {
            "median_ttft_s": median(with_s),
            "ratio_of_medians": round(statistics.median(with_s) / statistics.median(without_s), 3)
            if answered
            else None,
            "median_ratio_per_question": median([w / wo for w, wo in zip(with_s, without_s, strict=True)]),
            "prefix_reused": f"{len(reused)}/{len(answered)}",
            "median_tokens_reused": median([float(r[f"reused_{run}"]) for r in answered]),  # type: ignore[arg-type]
            "median_tokens_left": median(
                [float(r[f"prompt_tokens_{run}"]) - float(r[f"reused_{run}"]) for r in answered]
            ),  # type: ignore[arg-type]
        }
    summary.update(
        {
            "load_average_start": load,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "model": generator.name,
        }
    )
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
