"""The OpenAI-compatible clients' error handling, against a tiny scripted HTTP stub on loopback.

The stub only plays servers that misbehave (garbage, errors, silence, a reply cut short); answers
from a real server are tested in test_servers.py with llama-cpp-python's own server.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import types
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag import GenerationError, InputError, ModelError, Settings
from rag.backends.openai_server import api_root
from rag.backends.remote import OpenAIGenerator
from rag.backends.remote_embeddings import OpenAIEmbedder
from rag.backends.sse import iter_sse_data
from rag.store.vectors import parse_chroma_url

MESSAGES = [{"role": "user", "content": "hi"}]
Route = Callable[[BaseHTTPRequestHandler], None]


def sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def chunk(text: str | None = None, finish: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]})


class Stub:
    """Routes (method, path) -> handler; records the paths it was asked for."""

    def __init__(self):
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[str] = []
        self.bodies: list[object] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.body = json.loads(self.rfile.read(length)) if length else None
                stub.requests.append(self.path)
                stub.bodies.append(self.body)
                route = stub.routes.get((method, self.path))
                if route is None:
                    reply(self, 404, b'{"detail": "Not Found"}')
                else:
                    route(self)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client that gave up: expected here
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def streamed(body: bytes, *, pause_after_first: float = 0.0) -> Route:
    """An event stream without content-length (the connection closes at its end)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        handler.end_headers()
        first, _, rest = body.partition(b"\n\n")
        handler.wfile.write(first + b"\n\n")
        handler.wfile.flush()
        time.sleep(pause_after_first)
        handler.wfile.write(rest)
        handler.close_connection = True

    return route


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def generator(url: str, **kw) -> OpenAIGenerator:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("retries", 0)
    return OpenAIGenerator("test-model", url, **kw)


# --- pure parts ---------------------------------------------------------------------------------------
def test_sse_events_comments_multiline_data_and_unterminated_last_event():
    lines = [
        ": ping - 2026",
        "event: message",
        "data: one",
        "",
        "data:two",
        "data:  three",
        "",
        "id: 4",
        "data: [DONE]",
    ]
    assert list(iter_sse_data(lines)) == ["one", "two\n three", "[DONE]"]
    assert list(iter_sse_data(["", "", ": only comments", ""])) == []


def test_urls():
    assert api_root("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert api_root("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1"
    assert api_root("https://example.invalid/api/v1/") == "https://example.invalid/api/v1"
    with pytest.raises(ModelError, match="not of the form"):
        api_root("127.0.0.1:8080")
    assert parse_chroma_url("http://127.0.0.1:8123") == ("127.0.0.1", 8123, False)
    assert parse_chroma_url("https://chroma.example.invalid") == ("chroma.example.invalid", 8000, True)
    for bad in ("127.0.0.1:8000", "http://h:port", "http://h:1/some/path"):
        with pytest.raises(InputError):
            parse_chroma_url(bad)


def test_server_settings_from_environment(monkeypatch):
    monkeypatch.setenv("RAG_CHROMA_URL", "http://127.0.0.1:8123")
    monkeypatch.setenv("RAG_CHROMA_HEADERS", '{"Authorization": "Bearer s3cret"}')
    monkeypatch.setenv("RAG_CHROMA_COLLECTION", "lab_chunks")
    monkeypatch.setenv("RAG_MODEL", "openai:qwen")
    monkeypatch.setenv("RAG_BASE_URL", "http://127.0.0.1:8080/v1")
    monkeypatch.setenv("RAG_API_KEY", "k")
    settings = Settings()
    assert settings.store.chroma_headers == {"Authorization": "Bearer s3cret"}
    assert settings.store.chroma_collection == "lab_chunks"
    assert settings.models.api_key is not None and "k" not in repr(settings.models.api_key)
    assert OpenAIGenerator.from_settings("qwen", settings).server.root == "http://127.0.0.1:8080/v1"
    # the embedding server defaults to the model server
    assert OpenAIEmbedder.from_settings("e5", settings).server.root == "http://127.0.0.1:8080/v1"


def test_remote_model_without_a_url_says_what_to_set():
    with pytest.raises(ModelError, match="RAG_BASE_URL or pass --base-url"):
        OpenAIGenerator.from_settings("qwen", Settings())
    with pytest.raises(ModelError, match="RAG_EMBEDDING_BASE_URL"):
        OpenAIEmbedder.from_settings("e5", Settings())


# --- servers that misbehave -----------------------------------------------------------------------------
def test_stream_parses_pieces_until_done(stub):
    stub.routes["POST", "/v1/chat/completions"] = streamed(
        b": ping\n\n" + sse(chunk("Hello"), chunk(" world"), chunk(finish="stop"), "[DONE]")
    )
    assert list(generator(stub.url).stream(MESSAGES, max_tokens=8)) == ["Hello", " world"]


def test_reply_that_is_not_an_event_stream(stub):
    stub.routes["POST", "/v1/chat/completions"] = lambda h: reply(h, 200, b"<html>login</html>", "text/html")
    with pytest.raises(GenerationError, match=r"did not answer like an OpenAI-compatible server.*text/html"):
        list(generator(stub.url).stream(MESSAGES, max_tokens=8))


def test_event_that_is_not_json(stub):
    stub.routes["POST", "/v1/chat/completions"] = streamed(sse(chunk("ok"), "{not json", "[DONE]"))
    pieces = []
    with pytest.raises(GenerationError, match="not JSON"):
        for piece in generator(stub.url).stream(MESSAGES, max_tokens=8):
            pieces.append(piece)
    assert pieces == ["ok"]


def test_event_without_choices_and_error_event(stub):
    stub.routes["POST", "/v1/chat/completions"] = streamed(sse('{"object": "weird"}'))
    with pytest.raises(GenerationError, match="without choices"):
        list(generator(stub.url).stream(MESSAGES, max_tokens=8))
    stub.routes["POST", "/v1/chat/completions"] = streamed(sse(chunk("a"), '{"error": {"message": "KV cache full"}}'))
    with pytest.raises(GenerationError, match="failed mid-answer: KV cache full"):
        list(generator(stub.url).stream(MESSAGES, max_tokens=8))


def test_stream_cut_short_is_an_error(stub):
    stub.routes["POST", "/v1/chat/completions"] = streamed(sse(chunk("Half"), chunk(" an")))
    with pytest.raises(GenerationError, match="ended the answer early"):
        list(generator(stub.url).stream(MESSAGES, max_tokens=8))


def test_finish_reason_without_done_is_complete(stub):
    stub.routes["POST", "/v1/chat/completions"] = streamed(sse(chunk("Done"), chunk(finish="length")))
    assert list(generator(stub.url).stream(MESSAGES, max_tokens=8)) == ["Done"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "HTTP 401 .*invalid key.*RAG_API_KEY"),
        (404, "HTTP 404 .*check RAG_BASE_URL"),
        (500, "HTTP 500 .*invalid key.*server's log"),
    ],
)
def test_http_errors_carry_the_servers_message_and_a_hint(stub, status, expected):
    body = json.dumps({"error": {"message": "invalid key\nsecond line"}}).encode()
    stub.routes["POST", "/v1/chat/completions"] = lambda h: reply(h, status, body)
    with pytest.raises(GenerationError, match=expected) as info:
        list(generator(stub.url).stream(MESSAGES, max_tokens=8))
    assert "\n" not in str(info.value)


def test_unavailable_server_is_retried_then_succeeds(stub):
    calls = []

    def flaky(handler):
        calls.append(1)
        if len(calls) == 1:
            reply(handler, 503, b'{"error": {"message": "loading model"}}')
        else:
            streamed(sse(chunk("up"), "[DONE]"))(handler)

    stub.routes["POST", "/v1/chat/completions"] = flaky
    assert list(generator(stub.url, retries=1).stream(MESSAGES, max_tokens=8)) == ["up"]
    assert len(calls) == 2


def test_server_down_fails_fast_with_one_line(monkeypatch):
    import rag.backends.openai_server

    slept: list[float] = []  # the client's clock: its backoff is recorded, not waited for
    clock = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith("_")})
    clock.sleep = slept.append
    monkeypatch.setattr(rag.backends.openai_server, "time", clock)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    gen = generator(f"http://127.0.0.1:{port}", retries=2)
    with pytest.raises(
        GenerationError, match=r"cannot reach the model server at http://127.0.0.1:\d+/v1 .*3 attempts.*RAG_BASE_URL"
    ):
        list(gen.stream(MESSAGES, max_tokens=8))
    assert slept == [0.5, 1.0]  # backoff between the 3 attempts, 1.5 s in all
    with pytest.raises(ModelError, match="cannot reach"):
        gen.check()


@pytest.mark.timeout(30)  # a client that waited for the silent server would hang here
def test_silence_before_the_first_token_and_between_tokens_times_out(stub):
    release = threading.Event()  # the server stays silent until the test is over
    stub.routes["POST", "/v1/chat/completions"] = lambda h: (release.wait(60), reply(h, 200, b""))
    try:
        with pytest.raises(GenerationError, match=r"sent nothing for 0.5 s.*RAG_REQUEST_TIMEOUT"):
            list(generator(stub.url, timeout=0.5).stream(MESSAGES, max_tokens=8))
    finally:
        release.set()
    assert stub.requests.count("/v1/chat/completions") == 1  # not retried: a slow server is not sent the request twice

    stub.routes["POST", "/v1/chat/completions"] = streamed(sse(chunk("first"), "[DONE]"), pause_after_first=2)
    pieces = []
    with pytest.raises(GenerationError, match=r"sent nothing for 0.5 s"):
        for piece in generator(stub.url, timeout=0.5).stream(MESSAGES, max_tokens=8):
            pieces.append(piece)
    assert pieces == ["first"]


def test_check_rejects_a_server_that_is_not_openai_compatible(stub):
    stub.routes["GET", "/v1/models"] = lambda h: reply(h, 200, b"<html></html>", "text/html")
    with pytest.raises(ModelError, match="/models returned no JSON"):
        generator(stub.url).check()
    stub.routes["GET", "/v1/models"] = lambda h: reply(h, 200, b'{"models": 3}')
    with pytest.raises(ModelError, match="no model list"):
        generator(stub.url).check()


def test_token_count_falls_back_to_an_estimate_without_a_tokenize_endpoint(stub):
    gen = generator(stub.url)
    assert gen.count_tokens("x" * 40) == 10
    assert gen.count_tokens("") == 0
    assert stub.requests == ["/extras/tokenize/count", "/tokenize"]  # probed once, then estimated


def test_token_count_uses_llama_server_tokenize(stub):
    stub.routes["POST", "/tokenize"] = lambda h: reply(
        h, 200, json.dumps({"tokens": h.body["content"].split()}).encode()
    )
    gen = generator(stub.url)
    assert gen.count_tokens("one two three") == 3


def test_embeddings_garbage_is_a_model_error(stub):
    emb = OpenAIEmbedder("e", stub.url, retries=0, timeout=5.0)
    stub.routes["POST", "/v1/embeddings"] = lambda h: reply(h, 200, b'{"data": []}')
    with pytest.raises(ModelError, match="no list of 2 embeddings"):
        emb.encode(["a", "b"])
    stub.routes["POST", "/v1/embeddings"] = lambda h: reply(h, 200, b'{"data": [{"embedding": "abc", "index": 0}]}')
    with pytest.raises(ModelError, match=r"embedding server .* did not answer like"):
        emb.encode(["a"])
    stub.routes["POST", "/v1/embeddings"] = lambda h: reply(h, 200, b'{"data": [{"embedding": [0, 0], "index": 0}]}')
    with pytest.raises(ModelError, match="zero or non-finite"):
        emb.encode(["a"])
    stub.routes["POST", "/v1/embeddings"] = lambda h: reply(h, 404, b'{"detail": "Not Found"}')
    with pytest.raises(ModelError, match=r"HTTP 404 .*RAG_EMBEDDING_BASE_URL"):
        emb.encode(["a"])


def test_embeddings_keep_the_servers_order(stub):
    def route(h):
        data = [{"index": i, "embedding": [float(i + 1), 1.0]} for i in range(len(h.body["input"]))]
        reply(h, 200, json.dumps({"data": data[::-1]}).encode())

    stub.routes["POST", "/v1/embeddings"] = route
    vectors = OpenAIEmbedder("e", stub.url, retries=0, batch_size=2).encode(["a", "b", "c"])
    assert vectors.shape == (3, 2)
    assert [round(float(v[0] / v[1]), 3) for v in vectors] == [1.0, 2.0, 1.0]


def test_llama_cpp_python_server_is_asked_for_the_in_process_sampling(stub):
    stub.routes["POST", "/v1/chat/completions"] = streamed(sse(chunk("x"), "[DONE]"))
    list(generator(stub.url).stream(MESSAGES, max_tokens=8))
    plain = stub.bodies[-1]
    assert plain["temperature"] == 0.0 and plain["stream"] is True and "repeat_penalty" not in plain

    stub.routes["POST", "/extras/tokenize/count"] = lambda h: reply(h, 200, b'{"count": 2}')
    list(generator(stub.url).stream(MESSAGES, max_tokens=8, stop=["a", "b", "c", "d", "e"]))
    body = stub.bodies[-1]
    assert body["repeat_penalty"] == 1.0  # its default is 1.1; in-process llama.cpp uses none
    assert body["stop"] == ["a", "b", "c", "d"] and body["model"] == "test-model"


def test_an_embedding_server_whose_dimension_changed_says_so(stub, rag_home, small_corpus):
    from rag import Assistant, IndexCorruptError

    dimension = [8]

    def embeddings(handler: BaseHTTPRequestHandler) -> None:
        data = [
            {"index": i, "embedding": [float(len(text) % 7 + 1), *[1.0 + i] * (dimension[0] - 1)]}
            for i, text in enumerate(handler.body["input"])
        ]
        reply(handler, 200, json.dumps({"data": data}).encode())

    stub.routes[("POST", "/v1/embeddings")] = embeddings
    settings = Settings(  # no local model of whole abstracts: this is about the server's
        home=rag_home,
        embedding_model="openai:e",
        embedding_base_url=stub.url,
        request_retries=0,
        paper_embedding_model="",
    )
    assistant = Assistant(settings)
    assistant.ingest([small_corpus])
    assert assistant.search("experts", k=1, mode="dense")
    assistant.close()
    dimension[0] = 16  # the server now serves another model under the same name
    assistant = Assistant(settings)
    with pytest.raises(ModelError) as caught:
        assistant.search("experts", k=1, mode="dense")
    message = str(caught.value)  # it was: "the vector store ... is damaged (...); run `rag ingest` ..."
    assert not isinstance(caught.value, IndexCorruptError) and "damaged" not in message
    assert f"the embedding model openai:e on {stub.url}/v1 now makes 16-d vectors" in message
    assert "holds 8-d ones" in message and message.endswith("rag ingest --rebuild")
    assistant.ingest(rebuild=True)  # what the message says to do works
    assert assistant.search("experts", k=1, mode="dense")
    assistant.close()
