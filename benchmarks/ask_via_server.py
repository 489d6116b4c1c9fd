"""What `rag ask` costs beyond the answer: through a warm `rag serve` vs in a new process of its own.

    python benchmarks/ask_via_server.py [--rounds 2] [-m MODEL] [-o results.json]

Starts `rag serve` on a free port, then asks each question as a new `rag ask --json` process twice,
alternating: once through the server (RAG_SERVER_URL) and once with --no-server. The cost beyond
the answer is the process's wall time minus the answer's own `timings.total_s` (from the start of
retrieval to the verified answer): interpreter, imports, index and model loading, HTTP. Prints the
medians side by side and the load average before and after (the machine is shared).

Uses the index in RAG_HOME and the models dir (RAG_MODELS_HOME) as set; both must exist already
(`rag ingest`, one `rag ask`). The questions are about the bundled corpus.
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
import time
from pathlib import Path

import httpx

QUESTIONS = [
    "Which loss brings inverse document frequency into the sparsification of inference-free sparse retrievers?",
    "How does retrofitting a language model with dynamic tokenization decide where tokens begin and end?",
    "What two weaknesses limit conventional autoencoders when they are used to detect outliers?",
]
RAG = [sys.executable, "-m", "rag.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ask(question: str, model: str | None, env: dict[str, str], *flags: str) -> dict:
    argv = [*RAG, "ask", "--json", *flags, *(["-m", model] if model else []), question]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"rag ask failed: {done.stderr.strip()}")
    data = json.loads(done.stdout)
    total = data["timings"]["total_s"]
    return {
        "via": data["via"],
        "wall_s": round(wall, 3),
        "answer_total_s": round(total, 3),
        "beyond_answer_s": round(wall - total, 3),
        "retrieve_s": round(data["timings"]["retrieve_s"], 3),
        "refused": data["refused"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times each question is asked each way")
    parser.add_argument("-m", "--model", help="model for both ways (default: the catalogue's default)")
    parser.add_argument("-o", "--output", type=Path, help="write the runs and medians here as JSON")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_SERVER_PROBE_URL": ""}
    log = Path(tempfile.mkdtemp(prefix="rag-serve-")) / "serve.log"
    started = time.perf_counter()
    with log.open("w") as out:  # the server writes to its own copy of the descriptor
        server = subprocess.Popen(
            [*RAG, "serve", "--port", str(port), *(["-m", args.model] if args.model else [])],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        while True:
            if server.poll() is not None:
                sys.exit(f"rag serve exited: {log.read_text()[-1000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        print(f"rag serve ready in {time.perf_counter() - started:.1f} s (log {log})")
        before = load()
        print(f"load average before: {before}")
        runs = []
        for round_ in range(args.rounds):
            for question in QUESTIONS:
                for flags, extra in (([], {"RAG_SERVER_URL": url}), (["--no-server"], {})):
                    run = {"round": round_, "question": question, **ask(question, args.model, {**env, **extra}, *flags)}
                    runs.append(run)
                    print(json.dumps(run), flush=True)
        after = load()
        print(f"load average after: {after}")
    finally:
        server.terminate()
        server.wait(30)
    summary = {}
    for via in ("server", "in-process"):
        mine = [r for r in runs if r["via"] == via]
        summary[via] = {
            name: round(statistics.median(r[name] for r in mine), 3)
            for name in ("wall_s", "answer_total_s", "beyond_answer_s", "retrieve_s")
        }
        print(
            f"{via:>10}: median wall {summary[via]['wall_s']:.2f} s, answer {summary[via]['answer_total_s']:.2f} s, "
            f"beyond the answer {summary[via]['beyond_answer_s']:.2f} s, retrieval {summary[via]['retrieve_s']:.2f} s "
            f"({len(mine)} runs)"
        )
    ratio = summary["in-process"]["beyond_answer_s"] / max(summary["server"]["beyond_answer_s"], 1e-9)
    print(f"beyond the answer, in-process / server: {ratio:.1f}x")
    if args.output:
        args.output.write_text(
            json.dumps(
                {"load_before": before, "load_after": after, "runs": runs, "median": summary, "ratio": round(ratio, 2)},
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
