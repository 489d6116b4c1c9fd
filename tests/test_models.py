"""Model files: assembled from their packages with a sha256 check; half-written or damaged files
are redone or refused, never loaded; a full disk and a missing network are one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import Settings
from rag.backends.models import ModelRegistry, file_sha256, load_catalogue
from rag.cli import cli
from rag.errors import ModelError, ModelVerificationError

ROOT = Path(__file__).resolve().parent.parent


def catalogue_with(tmp_path: Path, name: str, sha256: str | None = None) -> Settings:
    """A one-entry catalogue: the pip-packaged 0.5B model under its own name (optionally a wrong hash)."""
    line = next(x for x in (ROOT / "models.txt").read_text().splitlines() if x.startswith("qwen2.5-coder-0.5b"))
    fields = line.split()
    fields[0] = name
    if sha256:
        fields[3] = sha256
    path = tmp_path / "models.txt"
    path.write_text(" ".join(fields) + "\n")
    return Settings(home=tmp_path / "home", models_file=path)


def test_assembly_verifies_and_a_wrong_hash_is_an_error_that_leaves_nothing(tmp_path):
    settings = catalogue_with(tmp_path, "tiny", sha256="0" * 64)
    registry = ModelRegistry(settings)
    with pytest.raises(ModelVerificationError, match="sha256"):
        registry.resolve("tiny")
    assert list(settings.models_dir.glob("tiny*")) == []


def test_half_written_model_is_detected_and_assembled_again(tmp_path):
    settings = catalogue_with(tmp_path, "tiny")
    registry = ModelRegistry(settings)
    entry = registry.get("tiny")
    target = registry.target(entry)
    target.parent.mkdir(parents=True)
    # What a process killed while assembling leaves: a .partial file, or a short file with an old stamp.
    target.with_suffix(".gguf.partial").write_bytes(b"half")
    target.write_bytes(b"GGUF" + b"\0" * 1000)
    (target.parent / "tiny.gguf.verified").write_text(json.dumps({"sha256": entry.sha256, "size": 1004, "mtime_ns": 0}))
    assert registry.status()[0].state != "ready"
    resolved = registry.resolve("tiny")
    assert resolved.path.stat().st_size == entry.size
    assert file_sha256(resolved.path) == entry.sha256
    assert registry.status()[0].state == "ready"
    assert not target.with_suffix(".gguf.partial").exists()


def test_disk_full_while_assembling_is_one_clear_error(tmp_path):
    settings = catalogue_with(tmp_path, "tiny")
    registry = ModelRegistry(settings)
    target = registry.target(registry.get("tiny"))
    target.parent.mkdir(parents=True)
    # /dev/full fails every write with ENOSPC, as a full disk does.
    target.with_suffix(".gguf.partial").symlink_to("/dev/full")
    with pytest.raises(ModelError, match="No space left on device"):
        registry.resolve("tiny")
    assert not target.exists() and not os.path.lexists(target.with_suffix(".gguf.partial"))


def test_pulling_a_hub_model_offline_fails_in_one_line(tmp_path):
    hub = next(e for e in load_catalogue(ROOT / "models.txt") if e.kind == "hf")
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path), "models", "pull", hub.name], obj={}, catch_exceptions=False
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot download {hub.name}")


def test_pulling_puts_the_offline_switch_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = next(e for e in load_catalogue(ROOT / "models.txt") if e.kind == "hf")
    with pytest.raises(ModelError):
        ModelRegistry(Settings(home=tmp_path)).pull(hub.name)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("qwen2.5-coder-0.5b", "catalogue", "qwen2.5-coder-0.5b"),
        ("models/tiny.gguf", "file", "tiny"),
        ("tiny.gguf", "file", "tiny"),
        ("/srv/models/qwen-q4", "file", "qwen-q4"),
        ("openai:qwen2.5-coder-1.5b", "server", "qwen2.5-coder-1.5b"),
        (" openai:llama3.2:3b ", "server", "llama3.2:3b"),
    ],
)
def test_one_rule_for_model_specs(spec, kind, name):
    from rag.backends.models import parse_model_spec

    parsed = parse_model_spec(spec)
    assert (parsed.kind, parsed.name) == (kind, name)
    assert (parsed.path is not None) == (kind == "file")


@pytest.mark.parametrize("spec", ["", "openai:", "   "])
def test_a_spec_that_names_nothing_is_an_unknown_model(spec):
    from rag.backends.models import parse_model_spec
    from rag.errors import UnknownModelError

    with pytest.raises(UnknownModelError):
        parse_model_spec(spec)


@pytest.mark.parametrize(
    ("spec", "generator", "embedder"),
    [
        ("openai:e5", "e5", "e5"),
        ("  openai: e5 ", "e5", "e5"),
        ("e5", None, None),
        ("models/openai:x.gguf", None, None),
    ],
)
def test_the_generator_and_the_embedding_model_read_openai_names_alike(spec, generator, embedder):
    # Two rules once: " openai:e5" was a local embedding folder but a server model for --model.
    from rag.backends.models import parse_model_spec
    from rag.setting_groups import remote_model

    parsed = parse_model_spec(spec)
    assert (parsed.name if parsed.kind == "server" else None) == generator
    assert remote_model(spec) == embedder


def test_an_embedding_model_that_names_nothing_on_the_server_is_a_bad_setting(tmp_path, monkeypatch):
    from rag.errors import SettingsError
    from rag.settings import Settings

    monkeypatch.setenv("RAG_EMBEDDING_MODEL", "openai: ")
    with pytest.raises(SettingsError, match="RAG_EMBEDDING_MODEL=openai: : 'openai: ' names no model"):
        Settings.load(home=tmp_path)


def test_the_generator_factory_fails_before_loading_anything(tmp_path):
    from rag.backends.llm import LlamaCppGenerator, make_generator
    from rag.errors import UnknownModelError

    settings = Settings(home=tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        make_generator(settings, str(tmp_path / "missing.gguf"))
    with pytest.raises(UnknownModelError, match="known models"):
        make_generator(settings, "gpt-17")
    with pytest.raises(ModelError, match="RAG_BASE_URL"):
        make_generator(settings, "openai:qwen")
    (tmp_path / "some.gguf").write_bytes(b"GGUF")
    unloaded = make_generator(settings, str(tmp_path / "some.gguf"), load=False)
    assert isinstance(unloaded, LlamaCppGenerator) and unloaded.name == "some" and unloaded.chat_format is None
    assert unloaded.n_threads == settings.models.n_threads
