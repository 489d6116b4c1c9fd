"""Test doubles for the logic around the models: never a substitute for the real ones where a test
proves that something works, but enough for tests of the index, answering and the chat."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from rag.protocols import Message

_TOKEN = re.compile(r"\w+")


class ScriptedGenerator:
    """A stand-in `Generator` that replies from a script: for tests of the logic around the model,
    never instead of it.

    `replies` is a list (the n-th call gets the n-th reply, the last one repeats) or a function of
    the messages. `calls` records the messages of every call; `delay` sleeps before each piece.
    """

    def __init__(
        self,
        replies: Sequence[str] | Callable[[Sequence[Message]], str],
        *,
        name: str = "scripted",
        n_ctx: int = 4096,
        delay: float = 0.0,
    ):
        self.replies = replies
        self.name = name
        self.n_ctx = n_ctx
        self.delay = delay
        self.calls: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        if callable(self.replies):
            reply = self.replies(messages)
        else:
            reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for piece in re.findall(r"\S+\s*", reply)[:max_tokens]:  # a word a token; the budget holds, as for a model
            if self.delay:
                time.sleep(self.delay)
            yield piece


class HashEmbedder:
    """Deterministic bag-of-words vectors (feature hashing of the stemmed content words the lexical
    index also sees): texts sharing words are close, texts sharing none are orthogonal but for
    hash collisions. Fast and model-free, with the `Embedder` interface the index uses.
    """

    def __init__(self, dimension: int = 256, name: str = "hash-embedder"):
        self.name = name
        self.dimension = dimension
        self.max_tokens = 256

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) + 2 for t in texts]

    def _vector(self, words: list[str]) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in words:
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dimension] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        from rag.store.lexical import tokenize

        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        out = np.stack([self._vector(words) for words in tokenize(list(texts))])
        if progress:
            progress(len(texts))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def write_synthetic_corpus(path: Path, papers: int) -> Path:
    """A JSON Lines corpus of `papers` one-sentence abstracts (one chunk each); paper i is titled
    "Study i of marker zq{i}x" and is the only one holding the word zq{i}x."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(papers):
            f.write(
                json.dumps(
                    {
                        "title": f"Study {i} of marker zq{i}x",
                        "abstract": f"We measure the zq{i}x effect in setting {i}.",
                    }
                )
                + "\n"
            )
    return path


ARXIV_CATEGORIES = ["cs.CL cs.LG", "cs.CV", "math.ST stat.ML", "hep-th", "cs.IR cs.CL", "q-bio.NC"]


def arxiv_record(i: int, abstract: str | None = None, title: str | None = None) -> dict:
    """Record i in the arXiv metadata snapshot's format (every field the snapshot has); its
    categories cycle through ARXIV_CATEGORIES."""
    return {
        "id": f"2101.{i:05d}",
        "submitter": f"Ada Author{i % 7}",
        "authors": f"Ada Author{i % 7}, Bo Builder{i % 11} and Cy Critic",
        "title": title or f"Study {i} of marker zq{i}x",
        "comments": "12 pages, 3 figures",
        "journal-ref": None,
        "doi": f"10.0000/zq.{i}" if i % 3 == 0 else None,
        "report-no": None,
        "categories": ARXIV_CATEGORIES[i % len(ARXIV_CATEGORIES)],
        "license": "http://arxiv.org/licenses/nonexclusive-distrib/1.0/",
        "abstract": abstract or f"  We measure the zq{i}x effect in setting {i}.\n",
        "versions": [{"version": "v1", "created": "Mon, 4 Jan 2021 18:00:00 GMT"}],
        "update_date": f"{2018 + i % 6}-01-05",
        "authors_parsed": [[f"Author{i % 7}", "Ada", ""], [f"Builder{i % 11}", "Bo", ""], ["Critic", "Cy", ""]],
    }


def write_arxiv_snapshot(path: Path, papers: int) -> Path:
    """An arXiv-metadata-format JSON Lines file of `papers` records (`arxiv_record(i)`)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(papers):
            f.write(json.dumps(arxiv_record(i)) + "\n")
    return path


class FakeEmbeddingServer:
    """An OpenAI-compatible `/v1/embeddings` server on loopback that answers each request after
    `latency_s + per_input_s * len(input)` with `HashEmbedder` vectors (deterministic), counting the
    requests it holds at once. For tests and benchmarks of the client (`rag.backends.remote_embeddings.OpenAIEmbedder`).

    `fail_after(n)`: after n more answered requests, every request gets HTTP `status` until `heal()`;
    `fail_next(n)`: the next n requests get HTTP `status` (a transient failure). A client in another
    process reads the counts at `GET /stats` and steers it with `POST /control` (see `control`).
    """

    def __init__(self, latency_s: float = 0.0, per_input_s: float = 0.0, dimension: int = 64, port: int = 0):
        self.latency_s = latency_s
        self.per_input_s = per_input_s
        self.embedder = HashEmbedder(dimension)
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.answered = self.refused = self.inputs = 0
        self._ok_left: int | None = None  # None: no failure planned
        self._fail_left = 0
        self._status = 500
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/stats":  # for a client in another process (benchmarks/embedding_server.py)
                    self._reply(200, server.stats())
                else:
                    self._reply(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                if self.path == "/control":  # {"reset": true} | {"heal": true} | {"fail_after": n, "status": s}
                    server.control(body)
                    self._reply(200, server.stats())
                    return
                status, payload = server._answer(body.get("input") or [])
                self._reply(status, payload)

            def _reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.http.daemon_threads = True
        self.http.handle_error = lambda request, client_address: None  # type: ignore[method-assign] # a client that gave up
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.http.serve_forever, name="fake-embedding-server", daemon=True)
        self.thread.start()

    def _answer(self, texts: list[str]) -> tuple[int, dict]:
        with self.lock:
            failing = self._fail_left > 0 or self._ok_left == 0
            if self._fail_left > 0:
                self._fail_left -= 1
            elif self._ok_left:
                self._ok_left -= 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.latency_s + self.per_input_s * len(texts))
            if failing:
                with self.lock:
                    self.refused += 1
                return self._status, {"error": {"message": "the fake server is failing on purpose"}}
            vectors = self.embedder.encode([str(t) for t in texts])
            with self.lock:
                self.answered += 1
                self.inputs += len(texts)
            data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
            return 200, {"object": "list", "data": data, "model": "fake"}
        finally:
            with self.lock:
                self.in_flight -= 1

    def fail_after(self, answered: int, status: int = 500) -> None:
        with self.lock:
            self._ok_left, self._status = answered, status

    def fail_next(self, requests: int, status: int = 503) -> None:
        with self.lock:
            self._fail_left, self._status = requests, status

    def heal(self) -> None:
        with self.lock:
            self._ok_left, self._fail_left = None, 0

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "max_in_flight": self.max_in_flight,
                "answered": self.answered,
                "refused": self.refused,
                "inputs": self.inputs,
            }

    def control(self, body: dict) -> None:
        if body.get("reset"):
            self.reset_counts()
        if body.get("heal"):
            self.heal()
        if "fail_after" in body:
            self.fail_after(int(body["fail_after"]), int(body.get("status", 500)))

    def reset_counts(self) -> None:
        with self.lock:
            self.max_in_flight = self.answered = self.refused = self.inputs = 0

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def __enter__(self) -> FakeEmbeddingServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "ARXIV_CATEGORIES",
    "FakeEmbeddingServer",
    "HashEmbedder",
    "ScriptedGenerator",
    "arxiv_record",
    "write_arxiv_snapshot",
    "write_synthetic_corpus",
]
