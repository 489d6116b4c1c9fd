"""How long a stopped answer holds up the next question: through a real `rag serve`, and in-process.

    HF_HUB_OFFLINE=1 python benchmarks/cancel_via_server.py [--rounds 3] [--cancel-after 2] [-o FILE.json]

The chat's Esc, as `tui/app.py` does it: a worker thread iterates `stream.events()`; Esc calls
`stream.cancel()` and the next question starts once that worker has ended (the chat's gate). Here a
question is asked, and `--cancel-after` seconds later, while the model still reads the passages (no
token yet: checked), the answer is cancelled; the clock runs from the cancel to the end of the next
question, one that is refused without the model (nothing relevant retrieved, ~50 ms of work), so
what is measured is the wait for the stopped answer, not the next answer's own work. Also reported:
how long the cancelled worker took to end (the chat's gate).

The server: `rag serve` started on a free loopback port, the client `rag.serve.client.ServerClient` as
the chat uses it. In-process: an `Assistant` in this process (the model loaded once more). Each
round asks a different question (so that the passages are not in the model's cache) through both,
alternating. Uses RAG_HOME and RAG_MODELS_HOME as set (an index and the model must exist already).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

QUESTIONS = [
    "Which loss brings inverse document frequency into the sparsification of inference-free sparse retrievers?",
    "How does retrofitting a language model with dynamic tokenization decide where tokens begin and end?",
    "What two weaknesses limit conventional autoencoders when they are used to detect outliers?",
    "How do vision transformers trained with masked image modeling compare to contrastive pretraining?",
    "What does retrieval-augmented generation add to a language model's answers?",
]
UNRELATED = "What is a good recipe for banana bread with walnuts?"  # refused without the model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cancel_then_next(answerer: Any, question: str, cancel_after: float) -> dict[str, Any]:
    """Ask, cancel while the model reads the passages, then ask UNRELATED; seconds of each part."""
    stream = answerer.stream(question)
    seen: list[str] = []
    error: list[BaseException] = []

    def consume() -> None:
        try:
            for event in stream.events():
                seen.append(event.kind)
        except BaseException as exc:  # noqa: BLE001 - reported
            error.append(exc)

    worker = threading.Thread(target=consume, daemon=True)
    asked = time.perf_counter()
    worker.start()
    time.sleep(cancel_after)
    in_prefill = not seen  # no token yet: the model is still reading the passages
    cancelled = time.perf_counter()
    stream.cancel()
    worker.join()
    ended = time.perf_counter()
    answer = answerer.ask(UNRELATED)
    done = time.perf_counter()
    return {
        "question": question,
        "cancelled_at_s": round(cancelled - asked, 2),
        "in_prefill": in_prefill,
        "worker_ended_s": round(ended - cancelled, 2),
        "next_answered_s": round(done - cancelled, 2),
        "next_refused": answer.refused,
        "worker_error": repr(error[0])[:160] if error else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="questions cancelled each way")
    parser.add_argument("--cancel-after", type=float, default=2.0, help="seconds from asking to Esc")
    parser.add_argument("--no-in-process", action="store_true", help="measure through the server only")
    parser.add_argument("-o", "--output", type=Path, help="write the runs and medians here as JSON")
    args = parser.parse_args()
    from rag import Assistant, Settings
    from rag.serve.client import ServerClient

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_SERVER_PROBE_URL": "", "RAG_KEEP_ALIVE": "-1"}
    log = Path(tempfile.mkdtemp(prefix="rag-serve-")) / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    runs: list[dict[str, Any]] = []
    try:
        while True:
            if server.poll() is not None:
                sys.exit(f"rag serve exited: {log.read_text()[-1000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).json().get("model_loaded"):
                    break
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
        client = ServerClient(url)
        local = None
        if not args.no_in_process:
            local = Assistant(Settings())
            local.load_generator()
            local.search("warm up the embedder", k=1)
        before = load()
        print(f"load average before: {before}", flush=True)
        for round_ in range(args.rounds):
            question = QUESTIONS[round_ % len(QUESTIONS)]
            ways: list[tuple[str, Any]] = [("server", client)] + ([("in-process", local)] if local else [])
            for via, answerer in ways if round_ % 2 == 0 else ways[::-1]:
                run = {"via": via, "round": round_, **cancel_then_next(answerer, question, args.cancel_after)}
                runs.append(run)
                print(json.dumps(run), flush=True)
        after = load()
        print(f"load average after: {after}")
        client.close()
        if local is not None:
            local.close()
    finally:
        server.terminate()
        server.wait(30)
    summary = {}
    for via in ("server", "in-process"):
        mine = [r for r in runs if r["via"] == via and r["in_prefill"]]
        if mine:
            summary[via] = {
                name: round(statistics.median(r[name] for r in mine), 2)
                for name in ("worker_ended_s", "next_answered_s")
            }
            print(
                f"{via:>10}: cancel -> worker ended {summary[via]['worker_ended_s']:.2f} s, "
                f"-> next question answered {summary[via]['next_answered_s']:.2f} s (median of {len(mine)})"
            )
    if args.output:
        args.output.write_text(
            json.dumps({"load_before": before, "load_after": after, "runs": runs, "median": summary}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
