"""Scale-out, tested for real: a Chroma server (`chroma run`) and llama-cpp-python's OpenAI-compatible
server (`python -m llama_cpp.server`) on loopback, started and stopped here.

The same `Assistant` API must give the same results as the embedded store and the in-process
model, and a server that goes away must give one clear error and lose nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from rag import Assistant, GenerationError, IndexMismatchError, Settings, VectorStoreError
from rag.backends.remote import OpenAIGenerator
from rag.cli import cli

pytestmark = pytest.mark.servers

SMALL_MODEL = "qwen2.5-coder-0.5b"
QUESTIONS = [
    "How much does the logical error rate drop with a larger code distance?",
    "What median GDT score does the pair-attention network reach on CASP?",
    "Which reefs were more resistant to bleaching during marine heatwaves?",
    "How many experts does the sparse language model use?",
    "diffusion convolution on road sensor graphs",
]
ANSWERABLE = [  # ones the 0.5B model answers with a verified citation
    "How many experts does the sparse mixture-of-experts language model use?",
    "What median GDT score does the pair-attention network reach on the CASP benchmark?",
]
CHROMA = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server in a subprocess on 127.0.0.1, ready when `ready_path` answers; its output goes to a log."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, log: Path, start_timeout: float):
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.log, self.start_timeout = log, start_timeout
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"{self.name} was not ready within {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL: as if it crashed); always waits for the process to end."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ServerProcess]]:
    """Every server a test of this module started; all stopped at the end, whatever happened."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def start_chroma(servers: list[ServerProcess], path: Path, port: int | None = None) -> ServerProcess:
    if CHROMA is None:
        pytest.fail("the `chroma` command (installed with chromadb) is missing")
    port = port or free_port()
    server = ServerProcess(
        "chroma",
        [CHROMA, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        port,
        "/api/v2/heartbeat",
        path.parent / f"chroma-{port}.log",
        start_timeout=60,
    )
    servers.append(server)
    return server.start()


def start_llama(servers: list[ServerProcess], gguf: Path, log_dir: Path, *extra: str) -> ServerProcess:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "rag.backends.llama_server",
        "--model",
        str(gguf),
        "--model_alias",
        SMALL_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        str(os.cpu_count() or 2),
        "--seed",
        "0",
        "--chat_format",
        "chatml",
        *extra,
    ]
    server = ServerProcess(
        "llama_cpp.server", argv, port, "/v1/models", log_dir / f"llama-{port}.log", start_timeout=120
    )
    servers.append(server)
    return server.start()


@pytest.fixture(scope="module")
def small_gguf(models_home) -> Path:
    """The Qwen2.5-Coder-0.5B file, assembled from its packages (once per session)."""
    from rag.backends.models import ModelRegistry

    return ModelRegistry(Settings(models_home=models_home)).resolve(SMALL_MODEL).path


@pytest.fixture(scope="module")
def chroma(servers, tmp_path_factory) -> ServerProcess:
    return start_chroma(servers, tmp_path_factory.mktemp("chroma") / "data")


@pytest.fixture(scope="module")
def llama(servers, small_gguf, tmp_path_factory) -> ServerProcess:
    return start_llama(servers, small_gguf, tmp_path_factory.mktemp("llama"))


def run_cli(*args: str, embedder=None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), obj={"embedder": embedder}, env=env, catch_exceptions=False)


# --- Chroma server ----------------------------------------------------------------------------------------
def test_chroma_server_gives_the_same_results_as_the_embedded_store(chroma, embedder, small_corpus, tmp_path):
    embedded = Assistant(Settings(home=tmp_path / "embedded"), embedder=embedder)
    remote = Assistant(
        Settings(home=tmp_path / "remote", chroma_url=chroma.url, chroma_collection="same_results"), embedder=embedder
    )
    try:
        for a in (embedded, remote):
            a.ingest([small_corpus])
        assert not (tmp_path / "remote" / "index" / "chroma").exists()  # the vectors live on the server only
        for question in QUESTIONS:
            for mode in ("hybrid", "dense"):
                here, there = embedded.search(question, k=5, mode=mode), remote.search(question, k=5, mode=mode)
                assert [h.chunk_id for h in there] == [h.chunk_id for h in here], (question, mode)
                assert [h.dense_score for h in there] == pytest.approx([h.dense_score for h in here], abs=1e-5)
        stats = remote.stats()
        assert stats.vectors == stats.chunks == embedded.stats().chunks
        assert stats.vector_store == f"{chroma.url} (same_results)" and embedded.stats().vector_store == "embedded"

        # a second data dir on the same server, in its own collection, sees only its own vectors
        other = Assistant(
            Settings(home=tmp_path / "other", chroma_url=chroma.url, chroma_collection="other_dir"), embedder=embedder
        )
        other.ingest([small_corpus / "small.jsonl"])
        assert other.stats().vectors == stats.chunks and remote.stats().vectors == stats.chunks
        other.close()
    finally:
        embedded.close()
        remote.close()


def test_chroma_server_stopped_mid_run_gives_one_clear_error_and_loses_nothing(
    servers, embedder, small_corpus, tmp_path
):
    server = start_chroma(servers, tmp_path / "chroma")
    home = tmp_path / "home"
    # exact_search_mb=0: searches go to the server (a small index is otherwise scanned from the catalog's copy)
    settings = Settings(home=home, chroma_url=server.url, exact_search_mb=0)
    a = Assistant(settings, embedder=embedder)
    a.ingest([small_corpus])
    before = a.stats()
    hits_before = [h.chunk_id for h in a.search(QUESTIONS[0], k=5)]
    scanning = Assistant(Settings(home=home, chroma_url=server.url), embedder=embedder)
    assert [h.chunk_id for h in scanning.search(QUESTIONS[0], k=5)] == hits_before

    server.stop(signal.SIGKILL)  # as if it crashed
    # a small index searched exactly from the catalog's vectors still answers while the server is down
    assert [h.chunk_id for h in scanning.search(QUESTIONS[0], k=5)] == hits_before
    scanning.close()
    with pytest.raises(VectorStoreError, match=f"the Chroma server at {server.url} does not answer .*chroma run"):
        a.search(QUESTIONS[0])
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        '{"title": "Tidal Energy from Estuaries", "abstract": "Tidal turbines in estuaries produce '
        'predictable power. We model twelve sites over one year of measured currents."}\n'
    )
    with pytest.raises(VectorStoreError):
        a.ingest([extra])
    # the CLI: exit 1 and one line on stderr
    result = run_cli(
        "--home",
        str(home),
        "--chroma-url",
        server.url,
        "search",
        QUESTIONS[0],
        embedder=embedder,
        env={"RAG_EXACT_SEARCH_MB": "0"},
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: the Chroma server at {server.url} does not answer")
    assert len(result.stderr.strip().splitlines()) == 1

    start_chroma(servers, tmp_path / "chroma", port=server.port)  # same data, same address
    after = a.stats()
    assert (after.papers, after.chunks, after.vectors) == (before.papers, before.chunks, before.vectors)
    assert [h.chunk_id for h in a.search(QUESTIONS[0], k=5)] == hits_before
    # what failed before can now be done; a rebuild empties the server's collection too
    assert a.ingest([extra]).added == 1
    report = a.ingest([small_corpus], rebuild=True)
    after = a.stats()
    assert after.vectors == after.chunks == report.chunks_added == before.chunks
    a.close()


# --- llama.cpp server -------------------------------------------------------------------------------------
@pytest.mark.llm
def test_openai_backend_answers_like_the_in_process_model(llama, small_model, embedder, small_corpus, tmp_path):
    home = tmp_path / "home"
    local = Assistant(Settings(home=home), embedder=embedder, generator=small_model)
    local.ingest([small_corpus])
    remote = Assistant(Settings(home=home, model=f"openai:{SMALL_MODEL}", base_url=llama.url), embedder=embedder)
    generator = remote.load_generator()  # the same path the CLI and the TUI take
    assert isinstance(generator, OpenAIGenerator) and remote.model_name == f"openai:{SMALL_MODEL}"
    # the server tokenizes with the same vocabulary: prompt budgets are the same
    sample = "Surface codes protect logical qubits [1]."
    assert generator.count_tokens(sample) == small_model.count_tokens(sample)

    answered = 0
    for question in ANSWERABLE:
        here, there = local.ask(question), remote.ask(question)
        assert there.model == f"openai:{SMALL_MODEL}" and there.timings.first_token_s is not None
        assert there.prompt_tokens == here.prompt_tokens
        assert there.refused == here.refused, (here.raw_text, there.raw_text)
        assert [c.paper_id for c in there.citations] == [c.paper_id for c in here.citations]
        assert [c.text for c in there.citations] == [c.text for c in here.citations]
        answered += not there.refused
        # Same weights, same sampling (greedy, no repeat penalty): the same words; a difference means
        # the server samples otherwise than llama.cpp in-process.
        assert there.raw_text == here.raw_text and there.text == here.text
    assert answered, "the comparison needs at least one answer that was not refused"
    refused = remote.ask("What is the capital of France?")
    assert refused.refused and refused.model is None  # refused before any model call, as in-process
    local.close()
    remote.close()


@pytest.mark.llm
def test_model_server_that_goes_away_gives_one_clear_error(servers, small_gguf, embedder, small_corpus, tmp_path):
    server = start_llama(servers, small_gguf, tmp_path)
    home = tmp_path / "home"
    a = Assistant(
        Settings(home=home, model=f"openai:{SMALL_MODEL}", base_url=server.url, request_retries=1), embedder=embedder
    )
    a.ingest([small_corpus])
    generator = a.load_generator()
    pieces = generator.stream(
        [{"role": "user", "content": "Count from 1 to 200, separated by commas."}], max_tokens=400
    )
    first = next(pieces)
    server.stop(signal.SIGKILL)  # mid-answer, as if it crashed
    with pytest.raises(GenerationError, match=f"{server.url}/v1 .*(broke|ended the answer early)"):
        for _ in pieces:
            pass
    assert first

    with pytest.raises(GenerationError, match=f"cannot reach the model server at {server.url}/v1"):
        a.ask(ANSWERABLE[0])
    assert a.stats().chunks == a.stats().vectors  # nothing of the index depends on the model server

    result = run_cli(
        "--home",
        str(home),
        "ask",
        "-m",
        f"openai:{SMALL_MODEL}",
        "--base-url",
        server.url,
        ANSWERABLE[0],
        embedder=embedder,
    )
    assert result.exit_code == 1
    progress, error = result.stderr.strip().splitlines()
    assert progress == f"Connecting to openai:{SMALL_MODEL} at {server.url} ..."
    assert error.startswith(f"Error: cannot reach the model server at {server.url}/v1") and "RAG_BASE_URL" in error
    a.close()


@pytest.mark.llm
def test_embeddings_from_a_server_are_recorded_and_checked(servers, small_gguf, embedder, small_corpus, tmp_path):
    server = start_llama(servers, small_gguf, tmp_path, "--embedding", "true")
    home = tmp_path / "home"
    settings = Settings(home=home, embedding_model=f"openai:{SMALL_MODEL}", embedding_base_url=server.url)
    a = Assistant(settings)
    report = a.ingest([small_corpus])
    stats = a.stats()
    assert stats.embedding_model == f"openai:{SMALL_MODEL}" and stats.dimension == 896  # Qwen2.5-0.5B's width
    assert stats.vectors == stats.chunks == report.chunks_added
    hits = a.search(QUESTIONS[0], k=3)
    assert hits[0].title.startswith("Quantum Error Correction")
    assert all(h.dense_score is not None for h in hits)
    a.close()
    local = Assistant(Settings(home=home), embedder=embedder)
    with pytest.raises(IndexMismatchError, match=f"built with embedding model 'openai:{SMALL_MODEL}'"):
        local.search(QUESTIONS[0])
    local.close()
