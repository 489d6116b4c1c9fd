"""`rag ask` through a running `rag serve` (rag/serve/client.py), and in-process when there is none to use.

The fast tests serve a real index (the small corpus, embedded by the HashEmbedder) with a scripted
model from a real uvicorn server in a thread; the slow one starts `rag serve` and `rag ask` as the
user would, with the real embedder and the real small model.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner, Result

from rag import Assistant, GenerationError, Settings
from rag.cli import cli
from rag.protocols import Message
from rag.serve.client import find_server
from rag.serve.server import create_app
from rag.testing import ScriptedGenerator

SURFACE = (
    "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]. "
    "A distance-five surface code was demonstrated on a superconducting processor [1]."
)
ASK_SURFACE = "By how much does the surface code's logical error rate drop as the distance grows?"
HEAVY = ["torch", "chromadb", "onnxruntime", "llama_cpp", "sentence_transformers"]


def reply(messages: Sequence[Message]) -> str:
    question = messages[-1]["content"].rsplit("Question:", 1)[-1].lower()
    return SURFACE if "surface code" in question else "I cannot tell from these passages."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(settings, hash_embedder, small_corpus) -> Iterator[Assistant]:
    """The Assistant a server keeps: the small corpus indexed, a scripted model loaded."""
    settings.models.model = "scripted"
    a = Assistant(settings, embedder=hash_embedder, generator=ScriptedGenerator(reply))
    a.ingest([small_corpus])
    yield a
    a.close()


@contextlib.contextmanager
def serving(assistant: Assistant, token: str | None = None) -> Iterator[str]:
    """A real HTTP server (uvicorn, as `rag serve` runs it) for `assistant`, in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(assistant, token=token, keep_alive=-1), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def ask(served: Assistant, *args: str, home: Path | None = None, **env: str) -> Result:
    """`rag ask ...` in this process; when it answers in-process, it uses the served Assistant's models."""
    obj = {"embedder": served.embedder, "generator": served.load_generator()}
    home = home or served.settings.home
    return CliRunner(env=env).invoke(cli, ["--home", str(home), "ask", *args], obj=obj)


def answer_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def without_timings(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("timings", "via", "server")}


def test_ask_answers_in_process_when_nothing_answers_on_the_probed_address(served):
    nobody = f"http://127.0.0.1:{free_port()}"
    result = ask(served, ASK_SURFACE, "--json", RAG_SERVER_PROBE_URL=nobody)
    data = answer_json(result)
    assert data["via"] == "in-process" and "server" not in data
    assert data["answer"] == SURFACE and result.stderr == ""  # nothing there: no note either


def test_ask_answers_through_a_running_server_with_the_same_output(served):
    with serving(served) as url:
        through = ask(served, ASK_SURFACE, "--json", RAG_SERVER_PROBE_URL=url)
        here = ask(served, ASK_SURFACE, "--json", "--no-server", RAG_SERVER_PROBE_URL=url)
        piped = [ask(served, ASK_SURFACE, *flag, RAG_SERVER_PROBE_URL=url) for flag in ([], ["--no-server"])]
        events = [
            ask(served, ASK_SURFACE, "--events", *flag, RAG_SERVER_PROBE_URL=url) for flag in ([], ["--no-server"])
        ]
        explicit = ask(served, ASK_SURFACE, "--json", RAG_SERVER_URL=url + "/v1")  # as `rag serve` prints it
    data = answer_json(through)
    assert data["via"] == "server" and data["server"] == url
    assert answer_json(here)["via"] == "in-process"
    assert without_timings(data) == without_timings(answer_json(here))
    assert data["answer"] == SURFACE and [c["key"] for c in data["citations"]] == [1]
    assert data["timings"]["total_s"] > 0 and data["model"] == "scripted"
    assert answer_json(explicit)["via"] == "server"
    # piped: the verified text on stdout, references after it; the timing line on stderr
    assert piped[0].exit_code == 0 and piped[0].stdout == piped[1].stdout
    assert piped[0].stdout.startswith(SURFACE + "\n\nReferences:\n[1] Quantum Error Correction")
    assert piped[0].stderr.startswith("(scripted: retrieve ") and piped[0].stderr.count("\n") == 1
    # --events: the same steps in the same order, the last one with the whole answer
    lines = [[json.loads(line) for line in r.stdout.splitlines()] for r in events]
    assert [(e["kind"], e["text"]) for e in lines[0]] == [(e["kind"], e["text"]) for e in lines[1]]
    assert {e["kind"] for e in lines[0]} == {"token", "sentence", "done"} and lines[0][-1]["answer"][
        "answer"
    ] == SURFACE


def test_a_server_of_another_data_dir_or_model_is_not_used(served, small_corpus, tmp_path):
    other = tmp_path / "other-home"
    ingest = CliRunner().invoke(
        cli, ["--home", str(other), "ingest", str(small_corpus)], obj={"embedder": served.embedder}
    )
    assert ingest.exit_code == 0, ingest.output
    with serving(served) as url:
        elsewhere = ask(served, ASK_SURFACE, "--json", home=other, RAG_SERVER_PROBE_URL=url)
        other_model = ask(served, ASK_SURFACE, "--json", "-m", "qwen2.5-coder-0.5b", RAG_SERVER_PROBE_URL=url)
        same_model = ask(served, ASK_SURFACE, "--json", "-m", "scripted", RAG_SERVER_PROBE_URL=url)
        explicit = ask(served, ASK_SURFACE, "--json", home=other, RAG_SERVER_URL=url)
    assert answer_json(elsewhere)["via"] == "in-process"
    assert elsewhere.stderr.strip() == (
        f"note: not using the rag server at {url}: it serves the data dir {served.settings.home.resolve()}, "
        f"not {other.resolve()}; answering here"
    )
    assert answer_json(other_model)["via"] == "in-process"
    assert "it serves the model scripted, not qwen2.5-coder-0.5b" in other_model.stderr
    assert answer_json(same_model)["via"] == "server"
    # a server named in RAG_SERVER_URL that serves another corpus is an error, not a silent switch
    assert explicit.exit_code == 1 and explicit.stdout == ""
    assert explicit.stderr.strip().splitlines() == [
        f"Error: not answering through the rag server at {url}: it serves the data dir "
        f"{served.settings.home.resolve()}, not {other.resolve()}; unset RAG_SERVER_URL or pass --no-server "
        "to answer here"
    ]


def test_an_explicit_server_that_does_not_answer_is_a_clean_error(served):
    nobody = f"http://127.0.0.1:{free_port()}"
    result = ask(served, ASK_SURFACE, RAG_SERVER_URL=nobody)
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: no rag server answers at {nobody} (")
    assert line.endswith("start one with `rag serve`, or pass --no-server")
    assert answer_json(ask(served, ASK_SURFACE, "--json", "--no-server", RAG_SERVER_URL=nobody))["via"] == "in-process"


def test_the_client_sends_rag_server_token(served):
    with serving(served, token="s3cret") as url:
        missing = ask(served, ASK_SURFACE, RAG_SERVER_URL=url)
        wrong = ask(served, ASK_SURFACE, RAG_SERVER_URL=url, RAG_SERVER_TOKEN="wrong")
        right = ask(served, ASK_SURFACE, "--json", RAG_SERVER_URL=url, RAG_SERVER_TOKEN="s3cret")
    for result in (missing, wrong):
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [
            f"Error: the rag server at {url} needs its token: set RAG_SERVER_TOKEN to the one it was started with "
            "(or pass --no-server)"
        ]
    assert answer_json(right)["via"] == "server"


def test_errors_of_the_server_read_as_they_do_in_process(served):
    def broken(messages: Sequence[Message]) -> str:
        raise GenerationError("the model failed while generating; ask again")

    served.load_generator().replies = broken  # type: ignore[attr-defined]
    with serving(served) as url:
        through = ask(served, ASK_SURFACE, RAG_SERVER_URL=url)
        here = ask(served, ASK_SURFACE, "--no-server", RAG_SERVER_URL=url)
        empty = ask(served, "  ", RAG_SERVER_URL=url)
        with httpx.Client(base_url=url) as client:  # the server's own check, for clients that skip theirs
            r = client.post("/v1/answer/events", json={"question": "?!"})
    assert through.exit_code == here.exit_code == 1
    assert through.stderr == here.stderr == "Error: the model failed while generating; ask again\n"
    assert empty.stderr == "Error: the question is empty; type a question about the papers\n"
    assert r.status_code == 400 and r.json()["error"]["type"] == "EmptyQuestionError"


async def test_the_chat_answers_through_a_running_server(served):
    from tui.app import make_app
    from tui.widgets import AnswerView

    served_model = served.load_generator()
    local = Assistant(Settings(home=served.settings.home), embedder=served.embedder)  # no model: it must not load one
    with serving(served) as url:
        server = find_server(Settings(home=served.settings.home, server_probe_url=url), None, print)
        assert server is not None
        app = make_app(assistant=local, server=server)
        async with app.run_test(size=(140, 40)) as pilot:
            app.prompt.focus()
            app.prompt.load_text(ASK_SURFACE)
            await pilot.press("enter")
            deadline = time.monotonic() + 20
            while not app.answers and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            [answer] = app.answers
            [view] = app.query(AnswerView)
            assert answer.text == SURFACE and "falls by a factor of 2.1" in view.text
            assert app.status.model == "scripted" and url in app.status.model_state
            assert app.papers[answer.citations[0].paper_id].title.startswith("Quantum Error Correction")
            # a follow-up sends the earlier answer, citations and all
            app.prompt.load_text("What processor was it demonstrated on?")
            await pilot.press("enter")
            while len(app.answers) < 2 and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await app.workers.wait_for_complete()
    local.close()
    assert not local.model_loaded and len(app.answers) == 2
    assert len(served_model.calls) == 2  # type: ignore[attr-defined]
    assert "Quantum Error Correction" in served_model.calls[1][-1]["content"]  # type: ignore[attr-defined]


def test_a_chat_cancel_while_the_server_reads_the_passages_frees_it_for_the_next_question(served):
    """Esc in the chat through `rag serve` while its model reads the passages: the chat's worker was
    blocked in a read until the first token, and the server read the whole prompt before it saw the
    client leave (the next question waited 15-21 s with the 1.5B model). The client hangs up at once
    now, and the server stops reading at its next step."""
    from test_server import SlowReader

    from rag.serve.client import ServerClient

    reader = Assistant(served.settings, embedder=served.embedder, generator=SlowReader(reply))  # 3 s to read
    with serving(reader) as url:
        client = ServerClient(url)
        stream = client.stream(ASK_SURFACE)
        kinds: list[str] = []
        errors: list[BaseException] = []

        def consume() -> None:  # the chat's worker
            try:
                kinds.extend(event.kind for event in stream.events())
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        worker = threading.Thread(target=consume, daemon=True)
        worker.start()
        time.sleep(0.5)
        cancelled = time.perf_counter()
        stream.cancel()
        worker.join(10)
        ended = time.perf_counter() - cancelled
        refusal = client.ask("What is a good recipe for banana bread with walnuts?")  # answered without the model
        next_answered = time.perf_counter() - cancelled
        client.close()
    reader.close()
    assert ended < 0.5, f"the chat's worker ended {ended:.1f} s after the cancel"
    assert next_answered < 1.5, f"the next question was answered {next_answered:.1f} s after the cancel"
    assert kinds == [] and errors == [] and stream.answer is None and stream.cancelled
    assert refusal.refused


LIGHT_ASK = """
import json, sys
from rag.cli import cli
cli.main(sys.argv[1:], standalone_mode=False, obj={{}})
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def test_rag_ask_through_a_server_imports_nothing_heavy(served):
    with serving(served) as url:
        result = subprocess.run(
            [sys.executable, "-c", LIGHT_ASK.format(heavy=HEAVY), "ask", "--json", ASK_SURFACE],
            capture_output=True,
            text=True,
            env={**os.environ, "RAG_SERVER_URL": url, "RAG_HOME": str(served.settings.home)},
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["via"] == "server"
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


@pytest.mark.llm
def test_a_real_rag_serve_answers_rag_ask_as_in_process_ask_does(
    settings, embedder, small_corpus, small_model, models_home, tmp_path
):
    question = "How many experts does the sparse mixture-of-experts language model use?"
    a = Assistant(settings, embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    expected = a.ask(question)
    a.close()
    port = free_port()
    env = {**os.environ, "RAG_HOME": str(settings.home), "RAG_MODELS_HOME": str(models_home), "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "-m", small_model.name],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        result = subprocess.run(
            [sys.executable, "-m", "rag.cli", "ask", "--json", question],
            capture_output=True,
            text=True,
            env={**env, "RAG_SERVER_PROBE_URL": url},
            timeout=300,
        )
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    data = json.loads(result.stdout)
    assert data["via"] == "server" and data["server"] == url
    assert data["answer"] == expected.text and "64" in data["answer"]
    assert [c["paper_id"] for c in data["citations"]] == [c.paper_id for c in expected.citations]


def test_any_openai_client_gets_cited_answers_from_rag_serve(served):
    """The `openai` package itself, streaming and not, against a real server on loopback."""
    import openai

    with serving(served, token="s3cret") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        [model] = [m.id for m in client.models.list()]
        done = client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK_SURFACE}])
        content = done.choices[0].message.content
        assert content is not None and "factor of 2.1" in content and "[1]" in content
        extra = done.model_extra or {}
        assert extra["refused"] is False
        [citation] = extra["citations"]
        assert citation["key"] == 1 and "surface" in citation["title"].lower()

        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": ASK_SURFACE}], stream=True
        )
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
        assert "".join(pieces).strip() == content.strip()

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
