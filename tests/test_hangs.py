"""Servers that hang instead of failing: every network wait has a deadline, and the model client keeps
the token budget itself. The servers are fakes on loopback, written at the socket level so that they
can misbehave in ways a real HTTP framework would not (hold a connection open without a word,
send keep-alive comments forever, trickle bytes, stream past max_tokens)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from rag import GenerationError, VectorStoreError
from rag.remote import OpenAIGenerator

MESSAGES = [{"role": "user", "content": "hi"}]
SSE_HEADERS = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


def event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text else {}
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


class RawServer:
    """A TCP server on loopback; `behave(path, socket)` answers each request (None: never answer)."""

    def __init__(self, behave: Callable[[str, socket.socket, threading.Event], None] | None):
        self.stop = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock = self.request
                sock.settimeout(30)
                try:
                    while not server.stop.is_set():
                        head = b""
                        while b"\r\n\r\n" not in head:
                            data = sock.recv(4096)
                            if not data:
                                return
                            head += data
                        header, _, body = head.partition(b"\r\n\r\n")
                        lines = header.decode("latin-1").split("\r\n")
                        length = next((int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")), 0)
                        while len(body) < length:
                            body += sock.recv(4096)
                        path = lines[0].split()[1]
                        if behave is None:
                            server.stop.wait(60)  # accept, read the request, never answer
                            return
                        behave(path, sock, server.stop)
                except OSError:
                    return  # the client gave up: that is what the tests want

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def json_reply(sock: socket.socket, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    sock.sendall(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
                 + data)


def openai_like(chat: Callable[[socket.socket, threading.Event], None]):
    """/models answers; the token-count probes are 404s; chat/completions runs `chat`."""

    def behave(path: str, sock: socket.socket, stop: threading.Event) -> None:
        if path.endswith("/models"):
            json_reply(sock, 200, {"data": [{"id": "m"}]})
        elif path.endswith("/chat/completions"):
            chat(sock, stop)
            raise OSError("done")  # end this connection
        else:
            json_reply(sock, 404, {"detail": "Not Found"})

    return behave


def keep_alive_only(sock, stop):
    sock.sendall(SSE_HEADERS)
    while not stop.wait(0.2):
        sock.sendall(b": keep-alive\n\n")


def trickle(sock, stop):
    sock.sendall(SSE_HEADERS)
    while not stop.wait(0.1):
        sock.sendall(b":")  # a comment line that never ends


def empty_deltas(sock, stop):
    sock.sendall(SSE_HEADERS)
    while not stop.wait(0.1):
        sock.sendall(event())


def endless_tokens(sock, stop):
    sock.sendall(SSE_HEADERS)
    while not stop.is_set():
        sock.sendall(event("word "))
        time.sleep(0.001)


@pytest.fixture
def serve():
    started = []

    def start(behave):
        s = RawServer(behave)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


@pytest.mark.parametrize("chat, what", [
    (keep_alive_only, "sent no token for 1 s"),
    (trickle, "sent no token for 1 s"),
    (empty_deltas, "sent no token for 1 s"),
])
def test_a_server_that_keeps_the_connection_busy_without_tokens_times_out(serve, chat, what):
    server = serve(openai_like(chat))
    generator = OpenAIGenerator("m", server.url, timeout=1.0, retries=0)
    started = time.monotonic()
    with pytest.raises(GenerationError, match=what):
        list(generator.stream(MESSAGES, max_tokens=50))
    assert time.monotonic() - started < 5
    generator.close()


def test_a_server_streaming_past_max_tokens_is_cut_at_the_budget(serve):
    server = serve(openai_like(endless_tokens))
    generator = OpenAIGenerator("m", server.url, timeout=5.0, retries=0)
    started = time.monotonic()
    pieces = list(generator.stream(MESSAGES, max_tokens=40))
    assert len(pieces) == 40 and time.monotonic() - started < 5
    generator.close()


def test_a_chroma_server_that_never_answers_is_an_error_within_the_deadline(serve, tmp_path, monkeypatch):
    import rag.chroma_http
    from rag.vectors import VectorStore

    monkeypatch.setattr(rag.chroma_http, "TIMEOUT_S", 1.0)
    server = serve(None)
    started = time.monotonic()
    with pytest.raises(VectorStoreError, match=r"the Chroma server at .* does not answer \(ReadTimeout\)"):
        VectorStore(tmp_path / "unused", url=server.url)
    assert time.monotonic() - started < 10


@pytest.fixture
def hash_embedder(monkeypatch):
    import rag.assistant
    from rag.testing import HashEmbedder

    monkeypatch.setattr(rag.assistant, "Embedder", lambda *a, **k: HashEmbedder())


def test_rag_ingest_against_a_silent_chroma_server_stops_with_one_line(serve, rag_home, small_corpus, hash_embedder,
                                                                        monkeypatch):
    import rag.chroma_http
    from rag.cli import cli

    monkeypatch.setattr(rag.chroma_http, "TIMEOUT_S", 1.0)
    server = serve(None)
    started = time.monotonic()
    result = CliRunner().invoke(
        cli, ["--home", str(rag_home), "--chroma-url", server.url, "ingest", str(small_corpus)], obj={},
    )
    assert result.exit_code == 1 and time.monotonic() - started < 15
    assert result.stderr.startswith("Error: the Chroma server at") and len(result.stderr.strip().splitlines()) == 1


def test_rag_ask_against_a_keep_alive_only_server_stops_with_one_line(serve, rag_home, small_corpus, hash_embedder,
                                                                       monkeypatch):
    from rag.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(rag_home), "ingest", str(small_corpus)], obj={}).exit_code == 0
    server = serve(openai_like(keep_alive_only))
    monkeypatch.setenv("RAG_REQUEST_TIMEOUT", "2")
    started = time.monotonic()
    result = runner.invoke(cli, ["--home", str(rag_home), "ask", "-m", "openai:m", "--base-url", server.url,
                                 "How does sparse mixture-of-experts routing lower the cost of language models?"], obj={})
    elapsed = time.monotonic() - started
    assert result.exit_code == 1 and elapsed < 10, (elapsed, result.output)
    *_, last = result.stderr.strip().splitlines()  # after "Connecting to openai:m at ..."
    assert last.startswith("Error: the model server at") and "sent no token for 2 s" in last
