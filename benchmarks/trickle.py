"""Servers that never finish: how long each network wait lasts, and how much memory it takes.

    python benchmarks/trickle.py [--every 1] [--deadline 5] [--guard 60] [-o results.json]

Each case starts a misbehaving server on loopback (a byte or a token every `--every` seconds, or
`data:` lines that never end their event) and runs one wait of the program against it in a fresh
process, with RAG_REQUEST_DEADLINE=`--deadline` and RAG_REQUEST_TIMEOUT=120 (the default silence
timeout, which a trickle never trips). A wait still running after `--guard` seconds is stopped
and reported as such. Prints, per case: the outcome (the error's first words, or "still waiting"),
the seconds it took and the process's peak RSS.

Uses only APIs that also exist before deadlines were added (settings from the environment), so the
same command measures the code before and after: run it from a checkout of each (PYTHONPATH=.).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

CASES = {
    "chroma-trickle": "a Chroma server sends its reply a byte at a time (opening the vector store)",
    "server-url-trickle": "RAG_SERVER_URL sends its /health a byte at a time (`rag ask`)",
    "probe-trickle": "the probe address sends its /health a byte at a time (looking for a `rag serve`)",
    "llm-models-trickle": "an LLM server sends /models a byte at a time (connecting to it)",
    "llm-slow-tokens": "an LLM server streams a token every interval, never finishing",
    "llm-endless-event": "an LLM server sends `data:` lines without ever ending the event (~20 MB/s)",
    "embedding-trickle": "an embedding server sends its reply's body a byte at a time",
}
SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


def serve(case: str, every: float) -> tuple[str, threading.Event]:
    """A server on loopback playing `case`; returns its URL and the event that stops it."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def reply(sock: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                return
            head += data
        path = head.split(b" ", 2)[1].decode()
        llm = case in ("llm-slow-tokens", "llm-endless-event")
        if llm and path.endswith("/chat/completions"):
            sock.sendall(SSE)
            line = b"data: " + b"x" * 1_000_000 + b"\n"
            token = b'data: {"choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": null}]}\n\n'
            while not stop.wait(0.05 if case == "llm-endless-event" else every):
                sock.sendall(line if case == "llm-endless-event" else token)
            return
        if llm:  # /models answers; the token-count endpoints do not exist
            body = b'{"data": [{"id": "m"}]}' if path.endswith("/models") else b'{"detail": "Not Found"}'
            status = b"200 OK" if path.endswith("/models") else b"404 Not Found"
            sock.sendall(
                b"HTTP/1.1 "
                + status
                + b"\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            return
        if case == "embedding-trickle":
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n")
        else:
            sock.sendall(b"H")
        while not stop.wait(every):
            sock.sendall(b" ")

    def accept() -> None:
        while not stop.is_set():
            sock, _ = listener.accept()
            threading.Thread(target=_quietly, args=(reply, sock), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", stop


def _quietly(reply, sock: socket.socket) -> None:
    try:
        reply(sock)
    except OSError:
        pass  # the client gave up
    finally:
        sock.close()


def wait_once(case: str, url: str) -> None:
    """The one wait of `case`, as the program does it (raises its error)."""
    from rag.settings import Settings

    if case == "chroma-trickle":
        from pathlib import Path

        import rag.store.chroma_http
        from rag.store.vectors import VectorStore

        rag.store.chroma_http.DEADLINE_S = float(os.environ["RAG_REQUEST_DEADLINE"])  # a constant, not a setting
        VectorStore(Path(tempfile.mkdtemp()), url=url)
    elif case == "server-url-trickle":
        from click.testing import CliRunner

        from rag.cli import cli

        result = CliRunner().invoke(
            cli, ["ask", "What is a sparse mixture of experts?"], obj={}, env={"RAG_SERVER_URL": url}
        )
        raise RuntimeError(result.output.strip().splitlines()[-1] if result.output.strip() else result.exception)
    elif case == "probe-trickle":
        from rag.serve.client import find_server

        found = find_server(Settings(server_probe_url=url), None, print)
        raise RuntimeError(f"found {found!r}: answering in-process")
    elif case in ("llm-models-trickle", "llm-slow-tokens", "llm-endless-event"):
        from rag.backends.remote import OpenAIGenerator

        generator = OpenAIGenerator.from_settings("m", Settings(base_url=url))
        if case == "llm-models-trickle":
            generator.check()
        else:
            pieces = list(generator.stream([{"role": "user", "content": "hi"}], max_tokens=10_000))
            raise RuntimeError(f"{len(pieces)} pieces")
    elif case == "embedding-trickle":
        from rag.backends.remote_embeddings import OpenAIEmbedder

        OpenAIEmbedder.from_settings("e", Settings(embedding_base_url=url)).encode(["a passage"])


def child(case: str, every: float, guard: float) -> None:
    """Run one case in this process; print {"outcome", "seconds", "rss_mb"} as JSON."""
    import resource

    url, stop = serve(case, every)
    outcome: list[str] = []

    def run() -> None:
        try:
            wait_once(case, url)
            outcome.append("returned")
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is measured
            outcome.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}")

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(guard)
    seconds = time.monotonic() - started
    stop.set()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = json.dumps(
        {
            "outcome": outcome[0] if outcome else f"still waiting after {guard:g} s",
            "seconds": round(seconds, 2),
            "rss_mb": round(rss_mb),
        }
    )
    os.write(1, line.encode() + b"\n")  # not print: a CliRunner still running holds sys.stdout
    os._exit(0)  # the guarded thread may still be blocked in a read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=float, default=1.0, help="seconds between two bytes (or tokens)")
    parser.add_argument("--deadline", type=float, default=5.0, help="RAG_REQUEST_DEADLINE for the run")
    parser.add_argument("--guard", type=float, default=30.0, help="stop a wait after this many seconds")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("-o", "--output", help="write the results as JSON here")
    args = parser.parse_args()
    if args.case:
        child(args.case, args.every, args.guard)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_REQUEST_DEADLINE=str(args.deadline),
        RAG_REQUEST_TIMEOUT="120",
        RAG_SERVER_PROBE_URL="",
        RAG_REQUEST_RETRIES="0",
        HF_HUB_OFFLINE="1",
        RAG_HOME=tempfile.mkdtemp(prefix="trickle-home-"),
    )
    results = {}
    for case, what in CASES.items():
        done = subprocess.run(
            [sys.executable, __file__, "--case", case, "--every", str(args.every), "--guard", str(args.guard)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        results[case] = json.loads(lines[-1]) if lines else {"outcome": done.stderr.strip()[-200:]}
        r = results[case]
        print(
            f"| {case} | {what} | {r.get('seconds', '?')} s | {r.get('rss_mb', '?')} MB | {r['outcome']} |", flush=True
        )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                {"every": args.every, "deadline": args.deadline, "guard": args.guard, "results": results}, f, indent=2
            )


if __name__ == "__main__":
    main()
