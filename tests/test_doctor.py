"""`rag doctor` reports a healthy install as healthy and a damaged index as a failure."""

from __future__ import annotations

import json

from click.testing import CliRunner

from rag.answer.prompts import EXPECTED_VARIABLES
from rag.cli import cli


def doctor(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "doctor", "--json", *args], obj={}, catch_exceptions=False)


def checks_of(result) -> dict[tuple[str, str], dict]:
    return {(c["section"], c["name"]): c for c in json.loads(result.stdout)["checks"]}


def test_fresh_data_dir_is_healthy_and_says_the_first_question_builds_the_index(rag_home):
    result = doctor(rag_home)
    assert result.exit_code == 0, result.output
    checks = checks_of(result)
    assert checks[("index", "state")]["status"] == "warn"
    assert checks[("network", "needs the network")]["status"] == "ok"
    assert checks[("llama.cpp", "build")]["status"] == "info"  # llama_cpp loads and reports its build
    assert checks[("models", "configured")]["detail"] == "qwen2.5-coder-1.5b"
    assert checks[("data dir", "path")]["detail"] == str(rag_home)


def test_index_with_missing_vectors_fails_with_the_way_out(assistant, small_corpus, rag_home):
    assistant.ingest([small_corpus])
    healthy = checks_of(doctor(rag_home))
    assert healthy[("index", "consistency")]["status"] == "ok"
    assert healthy[("index", "contents")]["detail"].startswith("5 papers")
    some = assistant.index.vectors.collection.get(limit=2)["ids"]
    assistant.index.vectors.delete(some)
    assistant.close()
    result = doctor(rag_home)
    assert result.exit_code == 1
    consistency = checks_of(result)[("index", "consistency")]
    assert consistency["status"] == "fail" and "rag ingest" in consistency["detail"]


def test_hub_model_not_downloaded_is_reported_as_needing_the_network(rag_home, monkeypatch):
    monkeypatch.setenv("RAG_MODEL", "qwen2.5-3b-instruct")
    checks = checks_of(doctor(rag_home))
    assert checks[("network", "model download")]["status"] == "warn"
    assert "rag models pull qwen2.5-3b-instruct" in checks[("network", "model download")]["detail"]


def test_missing_or_broken_prompts_fail_the_doctor(rag_home, tmp_path, monkeypatch):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    monkeypatch.setenv("RAG_PROMPTS_DIR", str(prompts))
    result = doctor(rag_home)
    assert result.exit_code == 1
    check = checks_of(result)[("files", "prompts")]
    assert check["status"] == "fail" and "system.txt is missing" in check["detail"]


def test_the_shipped_files_are_checked(rag_home):
    checks = checks_of(doctor(rag_home))
    assert checks[("files", "prompts")]["status"] == "ok"
    assert checks[("files", "prompts")]["detail"].startswith(f"{len(EXPECTED_VARIABLES)} templates checked")
    assert checks[("files", "model catalogue")]["status"] == "ok"


def test_a_model_choice_that_cannot_work_fails_the_doctor(rag_home, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_MODEL", "gpt-17")
    result = doctor(rag_home)
    assert result.exit_code == 1 and "unknown model 'gpt-17'" in checks_of(result)[("models", "model")]["detail"]
    monkeypatch.setenv("RAG_MODEL", str(tmp_path / "missing.gguf"))
    assert checks_of(doctor(rag_home))[("models", "model file")]["status"] == "fail"
    monkeypatch.setenv("RAG_MODEL", "openai:qwen")
    monkeypatch.setenv("RAG_BASE_URL", "http://127.0.0.1:9/v1")
    checks = checks_of(doctor(rag_home))
    assert checks[("models", "model server")]["detail"] == "qwen on the server at http://127.0.0.1:9/v1"
    assert checks[("network", "servers")]["detail"] == "configured to use model server http://127.0.0.1:9/v1"
