"""Where an answer's time went, in parts that add up to the wall time the user waited.

The library reports `Timings` (retrieve_s, which includes resolving a follow-up (no model call); first_token_s;
total_s, all from the start of `Assistant.stream`). The chat times what happens around that call:
the queue (other answers, an ingest, a model load) and the model load it started itself, and what
comes after (the sources fetched for the panel).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rag import Answer


@dataclass
class WallClock:
    """Monotonic timestamps of one question, taken by the chat."""

    sent: float = field(default_factory=time.monotonic)  # Enter
    gate: float | None = None  # the Assistant is ours (queue over)
    loaded: float | None = None  # the model is loaded (== gate when it already was)
    stream_start: float | None = None  # Assistant.stream called
    done: float | None = None  # answer and sources shown

    @property
    def wall(self) -> float | None:
        return None if self.done is None else self.done - self.sent


def breakdown(answer: Answer, clock: WallClock | None = None) -> tuple[list[tuple[str, float]], float]:
    """(label, seconds) parts and the total; with a clock the parts add up to the wall time."""
    t = answer.timings
    parts: list[tuple[str, float]] = []
    if clock is not None and clock.gate is not None:
        parts.append(("queued", clock.gate - clock.sent))
        if clock.loaded is not None and clock.loaded - clock.gate >= 0.05:
            parts.append(("model load", clock.loaded - clock.gate))
    parts.append(("search", t.retrieve_s))
    if t.first_token_s is not None:
        parts.append(("prefill", max(0.0, t.first_token_s - t.retrieve_s)))
        parts.append(("writing", max(0.0, t.total_s - t.first_token_s)))
    elif t.total_s - t.retrieve_s >= 0.05:
        parts.append(("checks", t.total_s - t.retrieve_s))
    total = t.total_s
    if clock is not None and clock.wall is not None:
        total = clock.wall
        other = total - sum(s for _, s in parts)
        if other > 0:
            parts.append(("other", other))  # the stream's set-up, the sources fetched for the panel
    return parts, total


LONG_LABELS = {
    "queued": "queued (behind other answers, an ingest, a model load)",
    "model load": "loading the model",
    "search": "searching",
    "prefill": "reading the passages (prefill, up to the first token)",
    "writing": "writing, each sentence checked",
    "checks": "checks",
    "other": "other (set-up, fetching the sources)",
}


def model_calls(answer: Answer, clock: WallClock | None = None) -> str:
    return "no model call" if answer.timings.first_token_s is None else "1 model call"


def format_timings(answer: Answer | None, clock: WallClock | None = None) -> list[str]:
    """Status-line pieces, most important first: total, parts, model calls, speed."""
    if answer is None:
        return ["no answer yet"]
    parts, total = breakdown(answer, clock)
    pieces = [
        f"{'wall' if clock is not None and clock.wall is not None else 'total'} {total:.2f}s",
        "= " + " + ".join(f"{label} {seconds:.2f}s" for label, seconds in parts if seconds >= 0.005),
    ]
    pieces.append(model_calls(answer, clock))
    t = answer.timings
    if t.first_token_s is not None and answer.completion_tokens:
        writing = t.total_s - t.first_token_s
        if writing > 0:
            pieces.append(f"{answer.completion_tokens / writing:.1f} tok/s")
    return pieces
