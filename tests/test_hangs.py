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

import httpx
import pytest
from click.testing import CliRunner

from rag import GenerationError, ModelError, Settings, VectorStoreError
from rag.backends.remote import OpenAIGenerator
from rag.backends.remote_embeddings import OpenAIEmbedder

# The elapsed-time bounds below are what these tests prove: a real socket is given up at its deadline.
# They stay on the wall clock (a fake clock would need fake sockets) with room for a loaded machine
# (a bound is the deadline plus 3-10 s); a client that never gives up fails at this timeout instead.
pytestmark = pytest.mark.timeout(90)

MESSAGES = [{"role": "user", "content": "hi"}]
SSE_HEADERS = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


def event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text else {}
    return (
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"
    )


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
                        length = next(
                            (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")), 0
                        )
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
    sock.sendall(
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data
    )


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


@pytest.mark.parametrize(
    "chat, what",
    [
        (keep_alive_only, "sent no token for 1 s"),
        (trickle, "sent no token for 1 s"),
        (empty_deltas, "sent no token for 1 s"),
    ],
)
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
    import rag.store.chroma_http
    from rag.store.vectors import VectorStore

    monkeypatch.setattr(rag.store.chroma_http, "TIMEOUT_S", 1.0)
    server = serve(None)
    started = time.monotonic()
    with pytest.raises(VectorStoreError, match=r"the Chroma server at .* does not answer \(ReadTimeout\)"):
        VectorStore(tmp_path / "unused", url=server.url)
    assert time.monotonic() - started < 10


def test_rag_ingest_against_a_silent_chroma_server_stops_with_one_line(
    serve, rag_home, small_corpus, hashed_assistants, monkeypatch
):
    import rag.store.chroma_http
    from rag.cli import cli

    monkeypatch.setattr(rag.store.chroma_http, "TIMEOUT_S", 1.0)
    server = serve(None)
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        ["--home", str(rag_home), "--chroma-url", server.url, "ingest", str(small_corpus)],
        obj={},
    )
    assert result.exit_code == 1 and time.monotonic() - started < 15
    assert result.stderr.startswith("Error: the Chroma server at") and len(result.stderr.strip().splitlines()) == 1


def test_rag_ask_against_a_keep_alive_only_server_stops_with_one_line(
    serve, rag_home, small_corpus, hashed_assistants, monkeypatch
):
    from rag.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(rag_home), "ingest", str(small_corpus)], obj={}).exit_code == 0
    server = serve(openai_like(keep_alive_only))
    monkeypatch.setenv("RAG_REQUEST_TIMEOUT", "2")
    started = time.monotonic()
    result = runner.invoke(
        cli,
        [
            "--home",
            str(rag_home),
            "ask",
            "-m",
            "openai:m",
            "--base-url",
            server.url,
            "How does sparse mixture-of-experts routing lower the cost of language models?",
        ],
        obj={},
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 1 and elapsed < 10, (elapsed, result.output)
    *_, last = result.stderr.strip().splitlines()  # after "Connecting to openai:m at ..."
    assert last.startswith("Error: the model server at") and "sent no token for 2 s" in last


# --- servers that keep sending, slowly, or without end (issue 24, item 4) ---------------------------------
# Each answers a byte (or a token) every EVERY seconds, well inside every silence timeout the test sets
# (5 s): what ends the request is the total deadline (DEADLINE seconds), or the cap on what is buffered.
EVERY = 0.2
DEADLINE = 1.5
SLOW = 5.0  # a silence timeout the trickles never trip


def trickled(data: bytes, then: bytes = b"a"):
    """Sends `data`, then `then` forever, a byte every EVERY seconds (it never completes)."""

    def behave(path: str, sock: socket.socket, stop: threading.Event) -> None:
        for byte in iter(data):
            if stop.wait(EVERY):
                return
            sock.sendall(bytes([byte]))
        while not stop.wait(EVERY):
            sock.sendall(then)

    return behave


TRICKLED_HEADERS = trickled(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: ")
TRICKLED_BODY = trickled(b"", then=b" ")  # the status line and headers come at once, see below


def trickled_body(path: str, sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n")
    TRICKLED_BODY(path, sock, stop)


def slow_tokens(sock, stop):
    sock.sendall(SSE_HEADERS)
    while not stop.wait(EVERY):
        sock.sendall(event("word "))


def endless_event(sock, stop):
    """`data:` lines that never end their event, at ~20 MB/s (before: the client kept all of them)."""
    sock.sendall(SSE_HEADERS)
    line = b"data: " + b"x" * 1_000_000 + b"\n"
    while not stop.wait(0.05):
        sock.sendall(line)


def finishes(fn, within: float = 30.0):
    """(the exception fn raised or None, seconds it took), failing if it is still running after `within`
    seconds (the code before these tests never returned)."""
    outcome: list = []

    def run() -> None:
        started = time.monotonic()
        try:
            fn()
            outcome.append((None, time.monotonic() - started))
        except Exception as exc:
            outcome.append((exc, time.monotonic() - started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert outcome, f"still waiting after {within:g} s"
    return outcome[0]


def slow_generator(url: str) -> OpenAIGenerator:
    return OpenAIGenerator("m", url, timeout=SLOW, deadline=DEADLINE, retries=2)


def test_a_model_server_that_trickles_its_headers_is_given_up_at_the_deadline(serve):
    server = serve(TRICKLED_HEADERS)
    error, took = finishes(slow_generator(server.url).check)
    assert isinstance(error, ModelError) and str(error) == (
        f"the model server at {server.url}/v1 did not finish its reply within 1.5 s (it kept sending, slowly); "
        "it may be overloaded: try again, or raise RAG_REQUEST_DEADLINE"
    )
    assert DEADLINE <= took < DEADLINE + 3  # not retried: a trickle would trickle again


def test_a_model_server_that_streams_tokens_slowly_is_given_up_at_the_deadline(serve):
    server = serve(openai_like(slow_tokens))
    generator = slow_generator(server.url)
    pieces: list[str] = []
    error, took = finishes(lambda: pieces.extend(generator.stream(MESSAGES, max_tokens=1000)))
    assert isinstance(error, GenerationError) and "did not finish its reply within 1.5 s" in str(error)
    assert DEADLINE <= took < DEADLINE + 3 and 3 <= len(pieces) <= 10  # the tokens before it were kept


def test_a_model_server_whose_event_never_ends_is_cut_at_the_event_cap(serve):
    server = serve(openai_like(endless_event))
    generator = OpenAIGenerator("m", server.url, timeout=SLOW, deadline=60, retries=0)
    error, took = finishes(lambda: list(generator.stream(MESSAGES, max_tokens=50)))
    assert isinstance(error, GenerationError) and str(error) == (
        f"the model server at {server.url}/v1 did not answer like an OpenAI-compatible server "
        "(an event longer than 4,194,304 characters); check RAG_BASE_URL"
    )
    assert took < 5  # 4 MB arrive in ~0.2 s; before, the event grew until the silence timeout


def test_an_embedding_server_that_trickles_its_reply_is_given_up_at_the_deadline(serve):
    server = serve(trickled_body)
    embedder = OpenAIEmbedder("e", server.url, timeout=SLOW, deadline=DEADLINE, retries=2)
    error, took = finishes(lambda: embedder.encode(["a passage"]))
    assert isinstance(error, ModelError) and str(error).startswith(
        f"the embedding server at {server.url}/v1 did not finish its reply within 1.5 s"
    )
    assert DEADLINE <= took < DEADLINE + 3  # an idempotent request, but a trickle is not retried


def test_a_reply_over_the_byte_cap_is_not_read_whole(serve):
    def huge(path: str, sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200000000\r\n\r\n")
        block = b" " * 1_000_000
        while not stop.is_set():
            sock.sendall(block)

    from rag.deadlines import MB

    server = serve(huge)
    embedder = OpenAIEmbedder("e", server.url, timeout=SLOW, max_bytes=2 * MB, retries=0)
    error, _took = finishes(lambda: embedder.encode(["a passage"]))
    assert isinstance(error, ModelError) and str(error) == (
        f"the embedding server at {server.url}/v1 sent a reply over 2 MB; check RAG_EMBEDDING_BASE_URL, "
        "or raise RAG_MAX_RESPONSE_MB"
    )


def test_the_deadline_and_the_cap_are_settings(monkeypatch):
    from rag.deadlines import MB, Budget

    monkeypatch.setenv("RAG_REQUEST_DEADLINE", "2.5")
    monkeypatch.setenv("RAG_MAX_RESPONSE_MB", "3")
    settings = Settings.load(base_url="http://127.0.0.1:9")
    assert OpenAIGenerator.from_settings("m", settings).server.budget == Budget(2.5, 3 * MB)
    assert OpenAIEmbedder.from_settings("e", settings).server.budget == Budget(2.5, 3 * MB)
    assert Settings.load().models.request_deadline == 2.5 and Settings().models.max_response_mb == 3
    monkeypatch.delenv("RAG_REQUEST_DEADLINE")
    monkeypatch.delenv("RAG_MAX_RESPONSE_MB")
    assert (Settings().models.request_deadline, Settings().models.max_response_mb) == (600, 64)


@pytest.fixture
def chroma_deadline(monkeypatch):
    import rag.store.chroma_http

    monkeypatch.setattr(rag.store.chroma_http, "TIMEOUT_S", SLOW)
    monkeypatch.setattr(rag.store.chroma_http, "DEADLINE_S", DEADLINE)


def test_a_chroma_server_that_trickles_is_an_error_at_the_deadline(serve, tmp_path, chroma_deadline):
    from rag.store.vectors import VectorStore

    server = serve(TRICKLED_HEADERS)
    error, took = finishes(lambda: VectorStore(tmp_path / "unused", url=server.url))
    assert isinstance(error, VectorStoreError), error
    assert str(error).startswith(f"the Chroma server at {server.url} does not answer (ResponseTooSlow)")
    assert DEADLINE <= took < DEADLINE + 3


def test_rag_ingest_against_a_trickling_chroma_server_stops_with_one_line(
    serve, rag_home, small_corpus, hashed_assistants, chroma_deadline
):
    from rag.cli import cli

    server = serve(trickled_body)
    result = None

    def ingest() -> None:
        nonlocal result
        result = CliRunner().invoke(cli, ["--chroma-url", server.url, "ingest", str(small_corpus)], obj={})

    error, took = finishes(ingest)
    assert error is None and result is not None and result.exit_code == 1, result and result.output
    assert result.stderr.startswith("Error: the Chroma server at") and len(result.stderr.strip().splitlines()) == 1
    assert took < DEADLINE + 5


def rag_serve_like(rag_home, events):
    """/health says it serves `rag_home`; /v1/answer/events runs `events`."""

    def behave(path: str, sock: socket.socket, stop: threading.Event) -> None:
        if path == "/health":
            json_reply(
                sock,
                200,
                {
                    "status": "ok",
                    "model": "m",
                    "model_spec": None,
                    "model_loaded": True,
                    "papers": 5,
                    "home": str(rag_home.resolve()),
                },
            )
        else:
            events(sock, stop)
            raise OSError("done")

    return behave


def test_rag_ask_through_a_trickling_rag_server_stops_with_one_line(serve, rag_home, monkeypatch):
    from rag.cli import cli

    rag_home.mkdir()
    monkeypatch.setenv("RAG_REQUEST_TIMEOUT", str(SLOW))
    monkeypatch.setenv("RAG_REQUEST_DEADLINE", str(DEADLINE))
    for behave, problem in [
        (TRICKLED_HEADERS, "did not finish its reply within 1.5 s"),  # /health itself
        (
            rag_serve_like(rag_home, lambda sock, stop: trickled(SSE_HEADERS, then=b":")("", sock, stop)),
            "did not finish its reply within 1.5 s",
        ),
        (rag_serve_like(rag_home, endless_event), "an event longer than 4,194,304 characters"),
    ]:
        server = serve(behave)
        monkeypatch.setenv("RAG_SERVER_URL", server.url)
        result = None

        def ask() -> None:
            nonlocal result
            result = CliRunner().invoke(cli, ["ask", "What is a sparse mixture of experts?"], obj={})

        error, took = finishes(ask)
        assert error is None and result is not None and result.exit_code == 1, result and result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: the rag server at {server.url}"), lines
        assert problem in lines[0] and took < DEADLINE + 5


def test_a_trickling_probe_address_is_given_up_within_a_second(serve, rag_home):
    from rag.serve.client import find_server

    server = serve(TRICKLED_HEADERS)
    settings = Settings.load(server_probe_url=server.url, request_timeout=SLOW)
    found: list = []
    error, took = finishes(lambda: found.append(find_server(settings, None, print)))
    assert error is None and found == [None]  # nothing usable there: `rag ask` answers in-process
    assert took < 3


def test_requests_through_a_proxy_have_the_deadline_too(monkeypatch):
    """httpx builds a transport of its own for each proxy of the environment: ours must replace it."""
    from rag import deadlines
    from rag.deadlines import MB, Budget

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    client = deadlines.Client(Budget(1.0, MB))
    transports = [client._transport_for_url(httpx.URL(url)) for url in ("http://example.invalid", "http://[::1]")]
    assert all(isinstance(t, deadlines.Transport) and t.budget == Budget(1.0, MB) for t in transports)
    assert all(isinstance(t._pool._network_backend, deadlines._Backend) for t in transports)
    client.close()
