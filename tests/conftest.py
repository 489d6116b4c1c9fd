"""Fixtures: every test gets a clean environment and its own data dir; the real models are loaded
once per session, and the test doubles of `rag.testing` stand in where a test checks logic.

Tiers: `python -m pytest -q -m "not slow" -n 6` is the fast one: model-free doubles only. Tests that need
the real LLM (`llm`), servers (`servers`), the real embedding model (`embedder`), the bundled corpus
indexed with it (`bundled`) or more than ~5 s are `slow` and run in the full suite; `llm`, `embedder`
and `bundled` are set from the fixtures a test uses. A test not marked `embedder` that loads a real
embedding model fails at once (`_no_real_embedder_outside_its_tier`). Under RAG_CI=1 (.ci/run) a
skipped test is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.backends.embeddings import Embedder
from rag.backends.llm import LlamaCppGenerator
from rag.offline import enforce_offline
from rag.testing import HashEmbedder

DATA = Path(__file__).parent / "data"
# Read before the autouse fixtures clear every RAG_* variable.
IN_CI = os.environ.get("RAG_CI") == "1"

enforce_offline()


# Fixtures that bring a real model or what one built: a test using any of them (directly or through
# another fixture) gets the marker without saying so.
MARKED_BY_FIXTURE = {
    "default_model": "llm",
    "small_model": "llm",
    "embedder": "embedder",
    "bundled_home": "bundled",
}
SLOW_MARKERS = ("llm", "servers", "embedder", "bundled")
# pytest-timeout: 300 s for every test (pyproject.toml), this for the tests of real models and servers.
SLOW_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real models, the servers and the bundled index are slow by nature: such tests are in the slow tier
    without saying so."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, marker in MARKED_BY_FIXTURE.items():
            if fixture in fixtures and not item.get_closest_marker(marker):
                item.add_marker(marker)
        if any(item.get_closest_marker(marker) for marker in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
            if not item.get_closest_marker("timeout"):
                # a real-LLM test took 302 s of the 300 s default in a full run at load 7-14
                item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under RAG_CI=1 nothing may be skipped: a missing tool (tmux, unshare) fails the run instead of
    hiding a test (.ci/run installs them)."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under RAG_CI=1, where every test must run: {reason}"


@pytest.fixture(autouse=True)
def _no_real_embedder_outside_its_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked `embedder` that loads a real embedding model (MiniLM, or any other through
    `make_embedder`) fails at once: the marker says which tests need one, and the fast tier has none."""
    if request.node.get_closest_marker("embedder"):
        return

    def refuse(self: Embedder):
        pytest.fail(
            f"{request.node.nodeid} loads the real embedding model {self.name!r}: give the Assistant a "
            "HashEmbedder (rag.testing), or mark the test `embedder` (slow tier)",
            pytrace=False,
        )

    monkeypatch.setattr(Embedder, "_load", refuse)


@pytest.fixture(autouse=True)
def _no_real_llm_in_the_fast_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fast-tier test that loads the real GGUF model fails, also when the load happens in a worker thread
    (the chat's) that swallows the error: the test doubles of `rag.testing` stand in there."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    loaded: list[str] = []

    def refuse(self: LlamaCppGenerator):
        loaded.append(self.name)
        raise RuntimeError(f"the fast tier loads no real model ({self.name})")

    monkeypatch.setattr(LlamaCppGenerator, "llm", property(refuse))
    yield
    if loaded:
        pytest.fail(
            f"{request.node.nodeid} loads the real language model {loaded[0]!r}: give the Assistant a "
            "ScriptedGenerator (rag.testing), or use the small_model fixture (slow tier)",
            pytrace=False,
        )


def _clear_rag_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def clean_session_environment() -> Iterator[None]:
    """The developer's own `RAG_*` settings never reach the tests (session fixtures included)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clear_rag_settings(monkeypatch)
        yield


@pytest.fixture(autouse=True)
def rag_home(tmp_path, monkeypatch) -> Path:
    """Every test starts with no `RAG_*` setting but its own empty data dir (and looks for no server)."""
    _clear_rag_settings(monkeypatch)
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("RAG_SERVER_PROBE_URL", "")  # a developer's own `rag serve` never answers for a test
    return home


@pytest.fixture(scope="session")
def embedder(models_home) -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once for the session (ONNX export cached in `models_home`,
    where `rag` subprocesses started with RAG_MODELS_HOME find it too)."""
    return Embedder(cache_dir=models_home / "embeddings", batch_size=16)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    """A model-free embedder for tests of the logic around retrieval (see rag.testing)."""
    return HashEmbedder()


@pytest.fixture
def hashed_assistants(monkeypatch) -> None:
    """Assistants built from settings alone (the CLI's, the chat's) embed with the HashEmbedder and have no
    paper model: for tests of commands that need no real model."""
    import rag.assistant

    monkeypatch.setattr(rag.assistant, "make_embedder", lambda settings: HashEmbedder())
    if hasattr(rag.assistant, "make_paper_embedder"):
        monkeypatch.setattr(rag.assistant, "make_paper_embedder", lambda settings: None)


@pytest.fixture
def settings(rag_home):
    from rag import Settings

    return Settings(home=rag_home)


@pytest.fixture
def assistant(settings, embedder):
    from rag import Assistant

    a = Assistant(settings, embedder=embedder)
    yield a
    a.close()


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    target = tmp_path / "corpus"
    target.mkdir()
    shutil.copy(DATA / "small.jsonl", target / "small.jsonl")
    return target


@pytest.fixture(scope="session")
def bundled_home(tmp_path_factory, embedder) -> Path:
    """The bundled corpus indexed once for the whole session (read-only for tests)."""
    from rag import Assistant, Settings

    home = tmp_path_factory.mktemp("bundled-home")
    a = Assistant(Settings(home=home), embedder=embedder)
    a.ingest()
    a.close()
    return home


@pytest.fixture(scope="session")
def hashed_bundled_home(tmp_path_factory) -> Path:
    """The bundled corpus indexed once with the HashEmbedder (seconds, not a minute), for tests of the
    index's own checks; open it with `HashEmbedder()`."""
    from rag import Assistant, Settings

    home = tmp_path_factory.mktemp("hashed-bundled-home")
    a = Assistant(Settings(home=home), embedder=HashEmbedder())
    a.ingest()
    a.close()
    return home


@pytest.fixture(scope="session")
def models_home(tmp_path_factory) -> Path:
    """One place per session where the GGUF models are assembled from their packages."""
    return tmp_path_factory.mktemp("models")


def _load_model(models_home: Path, name: str | None = None):
    """A catalogue model (default: the first entry), assembled into `models_home` and loaded."""
    from rag import Settings
    from rag.backends.llm import make_generator

    return make_generator(Settings(models_home=models_home), name)


@pytest.fixture(scope="session")
def small_model(models_home):
    """The real Qwen2.5-Coder-0.5B (fast enough for a handful of end-to-end questions), loaded once."""
    return _load_model(models_home, "qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def default_model(models_home):
    """The default model of the catalogue (Qwen2.5-Coder-1.5B): the one whose answers users see."""
    return _load_model(models_home)
