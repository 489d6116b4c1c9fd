"""How long after the model emits a token the user's side receives it (issue 16: <= 0.2 s).

    RAG_HOME=<data dir with an index> python benchmarks/visible_tokens.py [QUESTION ...]

Wraps the default model's generator so that each piece it yields is stamped, then consumes
`Assistant.events` (what `rag ask` on a terminal and the chat render) and stamps each "token" event
on arrival. Reports, over all questions, the lag from emission to arrival (p50 / p95 / max) and the
first token's lag. The terminal adds at most one refresh of its live view on top (`rag ask`: 20 per
second, i.e. <= 50 ms). Default questions are our own about the bundled corpus.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator, Sequence

from rag import Assistant
from rag.protocols import Generator, Message

QUESTIONS = [
    "What is SimMIM?",
    "How does MobileSAM make the Segment Anything model smaller?",
    "What does Video-Panda use instead of a pretrained image encoder?",
    "Why would a Lucene index be enough for vector search?",
]


class StampedGenerator:
    """The wrapped generator, with the time each piece left it."""

    def __init__(self, inner: Generator):
        self.inner, self.name, self.n_ctx = inner, inner.name, inner.n_ctx
        self.emitted: list[tuple[float, str]] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages: Sequence[Message], **kwargs) -> Iterator[str]:  # type: ignore[no-untyped-def]
        for piece in self.inner.stream(messages, **kwargs):
            self.emitted.append((time.perf_counter(), piece))
            yield piece


def lags(emitted: list[tuple[float, str]], received: list[tuple[float, str]]) -> list[float]:
    """Each received token's arrival minus the emission of the piece that completed its text so far."""
    out, i, sent = [], 0, ""
    got = ""
    for t, text in received:
        got += text
        while i < len(emitted) and len(sent) < len(got):
            sent += emitted[i][1]
            i += 1
        out.append(t - emitted[max(i - 1, 0)][0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="*", default=QUESTIONS)
    args = parser.parse_args()
    assistant = Assistant()
    stamped = StampedGenerator(assistant.load())
    assistant._model.generator = stamped  # the same model, stamped
    start_load = os.getloadavg()[0]
    all_lags, first_lags = [], []
    for question in args.questions:
        stamped.emitted.clear()
        received = [(time.perf_counter(), e.text) for e in assistant.events(question) if e.kind == "token"]
        if not received:
            print(f"{question!r}: refused before the model ran")
            continue
        question_lags = lags(stamped.emitted, received)
        all_lags += question_lags
        first_lags.append(question_lags[0])
        print(f"{question!r}: {len(received)} tokens, first token lag {question_lags[0] * 1000:.2f} ms")
    all_lags.sort()
    p95 = all_lags[min(len(all_lags) - 1, int(0.95 * len(all_lags)))]
    print(
        f"token lag over {len(all_lags)} tokens: p50 {statistics.median(all_lags) * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms, max {all_lags[-1] * 1000:.2f} ms; first-token lag max "
        f"{max(first_lags) * 1000:.2f} ms; load average {start_load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    assistant.close()


if __name__ == "__main__":
    main()
