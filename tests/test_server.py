"""`rag serve`: the HTTP API around one Assistant, through Starlette's TestClient.

The index is real (the small corpus, embedded by the model-free HashEmbedder); the model is a
`ScriptedGenerator` that `make_generator` hands out, so loading, unloading and reloading are
counted; one slow test asks the real small model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from starlette.testclient import TestClient

from rag import Assistant, GenerationError
from rag.cli import cli
from rag.protocols import Message
from rag.serve.server import Server, create_app, is_loopback
from rag.testing import ScriptedGenerator

SURFACE = (
    "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]. "
    "A distance-five surface code was demonstrated on a superconducting processor [1]."
)
EXPERTS = "The sparse language model has 64 experts with top-2 routing [1]."
ASK_SURFACE = "By how much does the surface code's logical error rate drop as the distance grows?"
ASK_EXPERTS = "What is a sparse mixture-of-experts language model?"


def reply(messages: Sequence[Message]) -> str:
    """The scripted model answers by the question at the end of its prompt."""
    question = messages[-1]["content"].rsplit("Question:", 1)[-1].lower()
    if "surface code" in question:
        return SURFACE
    if "expert" in question:
        return EXPERTS
    return "I cannot tell from these passages."


class TrackingGenerator(ScriptedGenerator):
    """Records when each generation ran, and how many ran at once."""

    def __init__(self, replies: Any, **kwargs: Any):
        super().__init__(replies, **kwargs)
        self.active = 0
        self.most_at_once = 0
        self.spans: list[tuple[float, float]] = []
        self.pieces = 0

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[str]:
        self.active += 1
        self.most_at_once = max(self.most_at_once, self.active)
        started = time.perf_counter()
        try:
            for piece in super().stream(messages, **kwargs):
                self.pieces += 1
                yield piece
        finally:
            self.active -= 1
            self.spans.append((started, time.perf_counter()))


@pytest.fixture
def loads(monkeypatch) -> list[TrackingGenerator]:
    """Every model the Assistant loads, in order (one object per load)."""
    made: list[TrackingGenerator] = []

    def make_generator(settings, spec=None, *, registry=None, progress=None, load=True):
        made.append(TrackingGenerator(reply, delay=0.01))
        return made[-1]

    monkeypatch.setattr("rag.backends.loaded.make_generator", make_generator)
    return made


@pytest.fixture
def served(settings, hash_embedder, small_corpus, loads) -> Iterator[Assistant]:
    settings.models.model = "scripted"
    a = Assistant(settings, embedder=hash_embedder)
    a.ingest([small_corpus])
    yield a
    a.close()


def chat(client: TestClient, *messages: tuple[str, str], **extra: Any) -> Any:
    body = {"model": "any", "messages": [{"role": r, "content": c} for r, c in messages], **extra}
    return client.post("/v1/chat/completions", json=body)


def keys(text: str) -> set[int]:
    return {int(k) for k in re.findall(r"\[(\d+)\]", text)}


def test_health_says_what_is_served(served):
    with TestClient(create_app(served)) as client:
        r = client.get("/health")
        assert r.status_code == 200
        assert r.json() == {
            "status": "ok",
            "model": "scripted",
            "model_spec": "scripted",
            "model_loaded": False,
            "papers": 5,
            "home": str(served.settings.home.resolve()),
        }
        assert chat(client, ("user", ASK_SURFACE)).status_code == 200
        assert client.get("/health").json()["model_loaded"] is True  # kept for keep_alive (300 s)
        models = client.get("/v1/models").json()
        assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["scripted"]


def test_a_token_guards_every_endpoint_but_health(served):
    auth = {"Authorization": "Bearer s3cret"}
    with TestClient(create_app(served, token="s3cret")) as client:
        # liveness for anyone; what is served (the data dir's path, the model) only with the token
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = client.get("/health", headers=headers)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert client.get("/health", headers=auth).json()["home"] == str(served.settings.home.resolve())
        for method, path, body in [
            ("GET", "/v1/models", None),
            ("POST", "/v1/search", {"query": "surface code", "k": 2}),
            ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": ASK_SURFACE}]}),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                r = client.request(method, path, json=body, headers=headers)
                assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
            assert client.request(method, path, json=body, headers=auth).status_code == 200
    served.settings.server.server_token = SecretStr("from-settings")  # RAG_SERVER_TOKEN
    with TestClient(create_app(served)) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer from-settings"}).status_code == 200


def test_serving_off_loopback_needs_a_token(rag_home, hash_embedder, small_corpus, monkeypatch):
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.20", "example.org"]))
    served: list[tuple[str, int]] = []
    monkeypatch.setattr("rag.serve.server.serve", lambda assistant, host, port: served.append((host, port)))
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(rag_home), "serve", "--host", "0.0.0.0"], obj={})
    assert result.exit_code == 1 and served == []
    assert result.stderr.strip().splitlines() == [
        "Error: refusing to serve on 0.0.0.0 (not loopback) without a token; set RAG_SERVER_TOKEN or use --host 127.0.0.1"
    ]
    obj = {"embedder": hash_embedder, "generator": ScriptedGenerator([EXPERTS])}
    assert runner.invoke(cli, ["--home", str(rag_home), "ingest", str(small_corpus)], obj=dict(obj)).exit_code == 0
    monkeypatch.setenv("RAG_SERVER_TOKEN", "s3cret")
    result = runner.invoke(
        cli, ["--home", str(rag_home), "serve", "--host", "0.0.0.0", "--port", "9001"], obj=dict(obj)
    )
    assert result.exit_code == 0, result.output
    assert served == [("0.0.0.0", 9001)]


def test_chat_completion_cites_with_keys_that_match_its_citations(served):
    with TestClient(create_app(served)) as client:
        r = chat(client, ("system", "You are helpful."), ("user", ASK_SURFACE))
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "scripted"
    (choice,) = data["choices"]
    content = choice["message"]["content"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert content == SURFACE and keys(content) == {c["key"] for c in data["citations"]} == {1}
    assert data["citations"][0]["title"].startswith("Quantum Error Correction with Surface Codes")
    assert set(data["citations"][0]) == {"key", "paper_id", "title", "text"}
    assert data["refused"] is False and data["timings"]["total_s"] > 0
    assert data["usage"]["completion_tokens"] == len(SURFACE.split())


def test_streaming_sends_verified_sentences_then_citations_then_done(served):
    with (
        TestClient(create_app(served)) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json={"stream": True, "messages": [{"role": "user", "content": ASK_SURFACE}]},
        ) as r,
    ):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[:-1]]
    assert [x for x in contents if x] == [SURFACE[: SURFACE.index("[1].") + 4], SURFACE[SURFACE.index("[1].") + 4 :]]
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop" and final["choices"][0]["delta"] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert keys("".join(x or "" for x in contents)) == {c["key"] for c in final["citations"]} == {1}
    assert final["refused"] is False and "total_s" in final["timings"]


def test_search_gives_what_rag_search_json_prints(served, hash_embedder):
    query = "routing tokens to experts"
    result = CliRunner().invoke(
        cli,
        ["--home", str(served.settings.home), "search", query, "-k", "3", "--json"],
        obj={"embedder": hash_embedder},
    )
    assert result.exit_code == 0, result.output
    with TestClient(create_app(served)) as client:
        r = client.post("/v1/search", json={"query": query, "k": 3})
        assert r.status_code == 200
        assert r.json() == json.loads(result.stdout)
        assert len(client.post("/v1/search", json={"query": query}).json()["hits"]) == 5  # k defaults to 5


def test_keep_alive_zero_unloads_after_each_answer_and_the_next_question_reloads(served, loads):
    with TestClient(create_app(served, keep_alive=0)) as client:
        assert chat(client, ("user", ASK_SURFACE)).json()["refused"] is False
        assert len(loads) == 1 and client.get("/health").json()["model_loaded"] is False
        second = chat(client, ("user", ASK_EXPERTS)).json()
        assert second["choices"][0]["message"]["content"] == EXPERTS
        assert len(loads) == 2 and [len(g.calls) for g in loads] == [1, 1]
        assert client.get("/health").json()["model_loaded"] is False


def test_an_idle_model_is_unloaded_after_keep_alive_seconds(served, loads):
    with TestClient(create_app(served, keep_alive=0.3)) as client:
        chat(client, ("user", ASK_SURFACE))
        assert client.get("/health").json()["model_loaded"] is True
        chat(client, ("user", ASK_EXPERTS))  # a question restarts the clock
        assert len(loads) == 1
        deadline = time.monotonic() + 5
        while client.get("/health").json()["model_loaded"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json()["model_loaded"] is False
        chat(client, ("user", ASK_SURFACE))
        assert len(loads) == 2


def test_two_questions_at_once_are_answered_one_after_the_other(served, loads):
    with TestClient(create_app(served, keep_alive=-1)) as client, ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(chat, client, ("user", q)) for q in (ASK_SURFACE, ASK_EXPERTS)]
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(r.json()["choices"][0]["message"]["content"] for r in responses) == sorted([SURFACE, EXPERTS])
    (model,) = loads
    assert model.most_at_once == 1 and len(model.spans) == 2
    (_, first_end), (second_start, _) = sorted(model.spans)
    assert first_end <= second_start


def test_a_follow_up_finds_the_paper_of_the_servers_earlier_answer(served, loads):
    moe = "Sparse Mixture-of-Experts Language Models at Low Cost"
    with TestClient(create_app(served)) as client:
        first = chat(client, ("user", ASK_EXPERTS)).json()
        earlier = first["choices"][0]["message"]["content"]
        follow = chat(
            client, ("user", ASK_EXPERTS), ("assistant", earlier), ("user", "How many experts do they train?")
        )
        assert follow.status_code == 200 and follow.json()["citations"][0]["title"] == moe
        # a reply the server never gave carries no citations: the follow-up is read with the question before it
        chat(
            client, ("user", ASK_EXPERTS), ("assistant", "Something else."), ("user", "How many experts do they train?")
        )
    prompts = [call[-1]["content"].rsplit("Question:", 1)[-1] for call in loads[0].calls]
    assert moe in prompts[1] and " they " not in prompts[1]
    assert ASK_EXPERTS in prompts[2] and "How many experts do they train?" in prompts[2]


@pytest.mark.parametrize("path", ["/v1/search", "/v1/chat/completions", "/v1/answer/events"])
def test_a_body_nested_too_deeply_is_a_400_not_a_recursion_error(served, path):
    # 100,000 '[' made json.loads raise RecursionError: 500 "internal error (RecursionError)"
    deep_text = [{"type": "text", "text": "[" * 40 + "]" * 40}]
    nested = {"role": "user", "content": deep_text}
    for _ in range(40):
        nested = {"role": "user", "content": [nested]}
    with TestClient(create_app(served)) as client:
        for body in (
            b"[" * 100_000,
            b'{"query": ' + b"[" * 900 + b"]" * 900 + b"}",
            json.dumps({"messages": [nested], "query": "x", "question": "x"}).encode(),
        ):
            r = client.post(path, content=body)
            assert r.status_code == 400, (r.status_code, r.text[:200])
            assert r.json() == {
                "error": {
                    "message": "the request body is nested more than 32 levels deep; send a flatter JSON body",
                    "type": "InputError",
                }
            }
        assert client.post("/v1/search", json={"query": "surface code"}).status_code == 200  # the server lives on


def test_errors_are_one_line_json_never_a_traceback(served, loads, settings):
    with TestClient(create_app(served)) as client:
        r = chat(client, ("user", "  \n "))
        assert r.status_code == 400
        assert r.json() == {
            "error": {
                "message": "the question is empty; type a question about the papers",
                "type": "EmptyQuestionError",
            }
        }
        r = client.post("/v1/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "?!"}]})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("the question has no words")
        r = chat(client, ("user", ASK_SURFACE), ("assistant", "An answer."))
        assert r.status_code == 400 and "last message must be the user's question" in r.json()["error"]["message"]
        r = client.post("/v1/search", json={"query": "surface code", "k": 0})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        assert "k:" in r.json()["error"]["message"] and "\n" not in r.json()["error"]["message"]
        r = client.post("/v1/search", content=b"{not json")
        assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]
        r = client.post("/v1/search", json={"query": "x" * 1_100_000})
        assert r.status_code == 413 and "error" in r.json()
        long = chat(client, ("user", "surface code logical error rate distance " * 100)).json()
        assert long["notices"] == ["the question was cut to its first 2000 characters"]  # as `rag ask` does

        def broken(messages: Sequence[Message]) -> str:
            raise GenerationError("the model failed while generating; ask again")

        loads.clear()
        served.unload_model()
        chat(client, ("user", ASK_SURFACE))  # loads a model ...
        loads[0].replies = broken  # ... that now fails
        r = chat(client, ("user", ASK_SURFACE))
        assert r.status_code == 500
        assert r.json() == {
            "error": {"message": "the model failed while generating; ask again", "type": "GenerationError"}
        }
        r = client.post(
            "/v1/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": ASK_SURFACE}]}
        )
        events = [line.removeprefix("data: ") for line in r.text.splitlines() if line]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["type"] == "GenerationError"
        assert "Traceback" not in r.text
    from rag import Settings

    empty = Assistant(Settings(home=settings.home / "elsewhere"), embedder=served.embedder)
    with TestClient(create_app(empty)) as client:
        assert client.get("/health").json()["papers"] == 0
        r = client.post("/v1/search", json={"query": "surface code"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "IndexMissingError"


def test_a_client_that_leaves_cancels_its_generation(served, loads):
    long = "Mixture-of-experts layers route each token to a few expert networks [1]. " * 6
    served.load_generator()
    loads[0].replies = [long]
    server = Server(served, keep_alive=-1)

    class LeavesAfterFirstSentence:
        gone = False

        async def is_disconnected(self) -> bool:
            return self.gone

    client = LeavesAfterFirstSentence()

    async def consume() -> list[Any]:
        pieces = []
        async for piece in server._answer(client, ASK_EXPERTS, []):  # type: ignore[arg-type]
            pieces.append(piece)
            client.gone = True  # the first sentence arrived; then the client leaves
        return pieces

    pieces = asyncio.run(consume())
    server.close()
    assert len(pieces) == 1 and isinstance(pieces[0], str)  # one sentence, and no Answer
    assert loads[0].pieces < len(long.split())  # the model stopped before the end


def test_a_client_that_leaves_mid_sentence_stops_the_model_before_the_sentence_ends(served, loads):
    words = " ".join(f"word{i}" for i in range(60))
    served.load_generator()
    loads[0].replies = [f"Mixture-of-experts layers route {words} [1]."]
    loads[0].delay = 0.05  # 3 s for the sentence
    server = Server(served, keep_alive=-1)
    server.POLL_S = 0.05

    class LeavesAtOnce:
        def __init__(self) -> None:
            self.checks = 0

        async def is_disconnected(self) -> bool:
            self.checks += 1
            return self.checks > 1  # connected when the answer starts, gone while the model writes

    async def consume() -> list[Any]:
        return [piece async for piece in server._answer(LeavesAtOnce(), ASK_EXPERTS, [])]  # type: ignore[arg-type]

    started = time.perf_counter()
    pieces = asyncio.run(consume())
    server.close()
    assert pieces == [] and loads[0].pieces < 20
    assert time.perf_counter() - started < 2


class SlowReader(ScriptedGenerator):
    """A model that reads its prompt for 3 s before its first token, as llama.cpp in-process does: only
    within `stopping(cancel)` can a cancel cut the reading short (`rag.backends.llm.Stoppable`)."""

    STEP_S = 0.05

    def __init__(self, replies: Any, steps: int = 60, **kwargs: Any):
        super().__init__(replies, **kwargs)
        self.steps = steps
        self.steps_read = 0
        self.cancel: threading.Event | None = None

    @contextlib.contextmanager
    def stopping(self, cancel: threading.Event) -> Iterator[None]:
        self.cancel = cancel
        try:
            yield
        finally:
            self.cancel = None

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[str]:
        cancel = self.cancel
        for _ in range(self.steps):
            if cancel is not None and cancel.is_set():
                return
            time.sleep(self.STEP_S)
            self.steps_read += 1
        yield from super().stream(messages, **kwargs)


def test_a_client_that_leaves_while_the_model_reads_the_passages_frees_the_server_at_once(served):
    """Esc in the chat during "reading the passages": the next question waited for the whole prompt to
    be read (15-21 s with the 1.5B model); the reading stops at its next step now."""
    model = SlowReader(reply)
    served = Assistant(served.settings, embedder=served.embedder, generator=model)
    server = Server(served, keep_alive=-1)
    server.POLL_S = 0.05

    class LeavesWhileReading:
        def __init__(self) -> None:
            self.started = time.perf_counter()

        async def is_disconnected(self) -> bool:
            return time.perf_counter() - self.started > 0.3

    async def cancelled_then_next() -> tuple[list[Any], float, list[Any]]:
        client = LeavesWhileReading()
        pieces = [piece async for piece in server._answer(client, ASK_EXPERTS, [])]  # type: ignore[arg-type]
        freed = time.perf_counter() - client.started
        hits = await server.run(served.search, "surface code", 1)  # the worker is free for the next request
        return pieces, freed, hits

    pieces, freed, hits = asyncio.run(cancelled_then_next())
    server.close()
    assert freed < 1.0, f"the stopped answer held the server {freed:.1f} s"
    assert pieces == [] and hits
    assert 0 < model.steps_read < model.steps  # it started reading, and stopped
    # a question after it is answered in full
    model.steps_read = 0
    assert served.ask(ASK_EXPERTS).text == EXPERTS
    served.close()


@pytest.mark.llm
def test_real_small_model_answers_through_the_server(settings, embedder, small_corpus, small_model):
    a = Assistant(settings, embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    with TestClient(create_app(a, keep_alive=-1)) as client:  # -1: the session's model stays loaded
        r = chat(client, ("user", "How many experts does the sparse mixture-of-experts language model use?"))
    a.close()
    assert r.status_code == 200
    data = r.json()
    content = data["choices"][0]["message"]["content"]
    assert keys(content) == {c["key"] for c in data["citations"]}
    assert not data["refused"] and "64" in content, content
    assert data["model"] == small_model.name


@pytest.mark.llm
def test_a_real_model_stops_reading_the_passages_when_its_client_leaves(
    settings, embedder, small_corpus, small_model, capfd
):
    """llama.cpp abandons the prompt within milliseconds of the cancel (and says nothing about it on
    stderr, the chat's screen), and the answer after it, read from what the KV cache kept, is the one a
    fresh cache gives."""
    a = Assistant(settings, embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    question = "How many experts does the sparse mixture-of-experts language model use?"
    small_model.llm.reset()
    expected = a.ask(question)
    small_model.llm.reset()
    small_model.last_prompt = None
    server = Server(a, keep_alive=-1)
    server.POLL_S = 0.02

    class LeavesWhileReading:
        left: float | None = None

        async def is_disconnected(self) -> bool:
            if self.left is None and small_model.last_prompt is not None:  # the model started reading
                await asyncio.sleep(0.2)
                self.left = time.perf_counter()
            return self.left is not None

    client = LeavesWhileReading()

    async def consume() -> list[Any]:
        return [piece async for piece in server._answer(client, question, [])]  # type: ignore[arg-type]

    pieces = asyncio.run(consume())
    freed = time.perf_counter() - (client.left or 0)
    server.close()
    try:
        assert pieces == [] and client.left is not None
        assert small_model.last_prompt is not None and small_model.llm.n_tokens < small_model.last_prompt.tokens
        assert freed < 1.0, f"the model went on reading for {freed:.1f} s"
        assert capfd.readouterr().err == ""
        again = a.ask(question)
        assert (again.text, again.raw_text) == (expected.text, expected.raw_text)
    finally:
        a.close()
