"""Settings in groups by job (issue 27, item 3): read as `settings.retrieval.candidates`, set as the flat
`RAG_CANDIDATES` users know, as a flat keyword (`Settings(candidates=5)`) or through `Settings.set`."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import SecretStr

from rag import Settings, SettingsError
from rag.settings import GROUP_OF, GROUPS, RetrievalSettings

# A valid value, not the default, for every setting in a group: adding a setting means adding it here.
VALUES = {
    "model": "openai:m",
    "embedding_model": "openai:e",
    "paper_embedding_model": "",
    "n_threads": "3",
    "embed_batch_size": "8",
    "models_home": "{tmp}/models",
    "models_file": "{tmp}/models.txt",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key": "key",
    "embedding_base_url": "http://127.0.0.1:9/e",
    "request_timeout": "5",
    "request_deadline": "6",
    "max_response_mb": "7",
    "request_retries": "0",
    "embedding_concurrency": "2",
    "candidates": "7",
    "rrf_k": "9",
    "exact_search_mb": "0",
    "candidates_for_answer": "4",
    "min_relevance": "0.5",
    "context_passages": "2",
    "context_sentences": "1",
    "context_by_meaning": "false",
    "context_whole_top_tokens": "0",
    "context_tokens": "100",
    "min_support": "0.4",
    "max_answer_tokens": "32",
    "temperature": "0.5",
    "prefill_while_typing": "false",
    "prompts_dir": "{tmp}/prompts",
    "server_token": "token",
    "server_url": "http://127.0.0.1:9",
    "server_probe_url": "http://127.0.0.1:9",
    "keep_alive": "0",
    "chunk_tokens": "64",
    "chunk_overlap": "0",
    "chroma_url": "http://127.0.0.1:9",
    "chroma_headers": '{"A": "b"}',
    "chroma_collection": "abc",
    "lock_timeout": "1",
}


def grouped(settings: Settings, name: str) -> object:
    return getattr(getattr(settings, GROUP_OF[name]), name)


def test_each_setting_is_in_one_group_under_its_flat_name():
    assert set(VALUES) == set(GROUP_OF)
    names = [name for model in GROUPS.values() for name in model.model_fields]
    assert len(names) == len(set(names))  # RAG_<NAME> says which setting, whatever its group
    top = set(Settings.model_fields)
    assert set(GROUPS) <= top and not (top & set(GROUP_OF))


def test_every_flat_variable_and_keyword_lands_in_its_group(tmp_path, monkeypatch):
    values = {name: value.replace("{tmp}", str(tmp_path)) for name, value in VALUES.items()}
    defaults = Settings()
    for name, value in values.items():
        monkeypatch.setenv(f"RAG_{name.upper()}", value)
    from_env = Settings.load()
    for name, value in values.items():
        monkeypatch.delenv(f"RAG_{name.upper()}")
        keyword = value if name != "chroma_headers" else json.loads(value)
        from_keyword = Settings.load(**{name: keyword})
        assert grouped(from_env, name) == grouped(from_keyword, name) != grouped(defaults, name), name
    assert from_env.retrieval.candidates == 7 and from_env.store.chroma_headers == {"A": "b"}
    assert from_env.models.api_key == SecretStr("key") and from_env.answer.context_by_meaning is False


def test_a_keyword_wins_over_the_variable_and_a_group_is_merged(monkeypatch):
    monkeypatch.setenv("RAG_CANDIDATES", "7")
    assert Settings.load().retrieval.candidates == 7
    assert Settings.load(candidates=5).retrieval.candidates == 5
    settings = Settings(retrieval={"rrf_k": 2})
    assert (settings.retrieval.candidates, settings.retrieval.rrf_k) == (7, 2)
    assert Settings(retrieval=RetrievalSettings(rrf_k=3)).retrieval.candidates == 40  # a group given whole


def test_a_setting_is_read_one_way():
    settings = Settings()
    assert not hasattr(settings, "candidates")
    with pytest.raises(ValueError, match="candidates"):
        settings.candidates = 3  # type: ignore[attr-defined]  # not a silent new attribute
    with pytest.raises(TypeError, match="candidates"):
        settings.model_copy(update={"candidates": 3})  # model_copy does not validate: it would be lost


def test_the_nested_form_is_not_read(monkeypatch):
    # Only the flat names users know: RAG_RETRIEVAL__CANDIDATES would be a second name for one setting.
    monkeypatch.setenv("RAG_RETRIEVAL__CANDIDATES", "3")
    monkeypatch.setenv("RAG_RETRIEVAL", '{"candidates": 3}')
    assert Settings.load().retrieval.candidates == 40


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("RAG_CANDIDATES", "0", "invalid setting RAG_CANDIDATES=0: Input should be greater than or equal to 1"),
        ("RAG_CONTEXT_BY_MEANING", "maybe", "invalid setting RAG_CONTEXT_BY_MEANING=maybe: Input should be a valid"),
        ("RAG_SERVER_URL", "ftp://h", "invalid setting RAG_SERVER_URL=ftp://h: not an http or https URL with a host"),
        ("RAG_MODEL", "openai: ", "invalid setting RAG_MODEL=openai: : 'openai: ' names no model"),
        ("RAG_CHROMA_COLLECTION", "ab", "invalid setting RAG_CHROMA_COLLECTION=ab: String should have at least 3"),
    ],
)
def test_a_bad_flat_value_is_one_line_naming_its_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    keyword = name.removeprefix("RAG_").lower()
    monkeypatch.delenv(name)
    with pytest.raises(SettingsError, match=f"^invalid setting {name}="):
        Settings.load(**{keyword: value})


def test_a_secret_in_a_group_is_never_echoed(monkeypatch):
    monkeypatch.setenv("RAG_CHROMA_HEADERS", '{"Authorization": ["Bearer", "s3cret"]}')
    with pytest.raises(SettingsError, match="RAG_CHROMA_HEADERS") as caught:
        Settings.load()
    assert "s3cret" not in str(caught.value)
    monkeypatch.delenv("RAG_CHROMA_HEADERS")
    for name in ("api_key", "server_token"):
        with pytest.raises(SettingsError, match=f"^invalid setting RAG_{name.upper()}: ") as caught:
            Settings.load(**{name: ["s3cret"]})
        assert "s3cret" not in str(caught.value)
    settings = Settings.load(api_key="s3cret", server_token="s3cret")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    with pytest.raises(SettingsError, match=r"^invalid --token: ") as caught:
        settings.set("server_token", ["s3cret"], "--token")  # `set` echoed the value it refused
    assert "s3cret" not in str(caught.value) and settings.server.server_token == SecretStr("s3cret")


def test_set_validates_and_keeps_the_old_value_on_a_bad_one():
    settings = Settings.load(candidates=9)
    with pytest.raises(SettingsError, match=r"^invalid --candidates=0: Input should be greater than or equal to 1$"):
        settings.set("candidates", 0, "--candidates")
    with pytest.raises(SettingsError, match=r"^invalid setting RAG_CHUNK_TOKENS=1000: "):
        settings.set("chunk_tokens", 1000)
    assert settings.retrieval.candidates == 9 and settings.store.chunk_tokens == 110
    settings.set("candidates", "12", "--candidates")  # read as the variable would be
    assert settings.retrieval.candidates == 12
    with pytest.raises(SettingsError, match=r"^invalid setting RAG_HOME=: empty"):
        settings.set("home", "")  # a top-level setting too


def test_a_copy_shares_no_group():
    settings = Settings.load(candidates=9)
    copy = settings.model_copy()
    copy.set("candidates", 3)
    assert (settings.retrieval.candidates, copy.retrieval.candidates) == (9, 3)


def test_the_chats_model_choice_is_checked_as_rag_model_is(settings, hash_embedder):
    from rag import Assistant
    from rag.testing import ScriptedGenerator

    generator = ScriptedGenerator(["reply"])
    assistant = Assistant(settings, embedder=hash_embedder, generator=generator)
    with pytest.raises(SettingsError, match=r"^invalid model=openai:: 'openai:' names no model"):
        assistant.set_model("openai:")  # F2 and a reopened chat switch models through set_model
    assert settings.models.model is None and assistant.load_generator() is generator
    assistant.close()


def test_a_remembered_chat_model_is_checked_as_rag_model_is(settings, hashed_assistants):
    from tui.app import make_app
    from tui.store import ChatSettings

    path = settings.data_dir.chat_settings
    path.parent.mkdir(parents=True, exist_ok=True)
    ChatSettings(model="openai:").save(path)
    expected = f"invalid model in {path}=openai:: 'openai:' names no model"
    with pytest.raises(SettingsError, match="^" + re.escape(expected)):
        make_app(settings)
