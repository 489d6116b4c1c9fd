"""Settings and paths that used to end in a traceback: each is one line that names the problem and
what to do, with a non-zero exit."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rag import Settings, resources
from rag.backends.models import load_catalogue
from rag.cli import cli
from rag.errors import ModelError, SettingsError

MODELS = resources.models_file()


def one_line_error(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args or ("search", "graphs")), obj={}, env=env)
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, SystemExit) or result.exception.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


def test_chroma_headers_that_are_not_json(monkeypatch):
    line = one_line_error({"RAG_CHROMA_HEADERS": "notjson"})
    assert line == (
        "Error: invalid setting RAG_CHROMA_HEADERS: not valid JSON; give a JSON object, "
        'e.g. \'{"Authorization": "Bearer TOKEN"}\''
    )
    line = one_line_error({"RAG_CHROMA_HEADERS": '{"Authorization": ["Bearer", "secret-token"]}'})
    assert "RAG_CHROMA_HEADERS" in line and "secret-token" not in line  # header values are never echoed


def test_home_that_is_a_file(a_file):
    line = one_line_error({"RAG_HOME": str(a_file)})
    assert (
        line
        == f"Error: invalid setting RAG_HOME={a_file}: is a file, not a directory; give a directory (it is created if missing)"
    )
    line = one_line_error({"RAG_HOME": str(a_file / "sub")})
    assert f"is inside {a_file}, which is a file" in line
    line = one_line_error({"RAG_MODELS_HOME": str(a_file)})
    assert line.startswith(f"Error: invalid setting RAG_MODELS_HOME={a_file}: is a file")


def test_empty_home_is_not_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error({"RAG_HOME": ""})
    assert line == "Error: invalid setting RAG_HOME=: empty; unset RAG_HOME for the default, or give a directory"
    assert list(tmp_path.iterdir()) == []  # nothing was written where the command ran
    with pytest.raises(SettingsError, match="RAG_HOME"):
        Settings.load(home="  ")


@pytest.mark.parametrize(
    "column, value, message",
    [
        (2, "1.1GB", "size '1.1GB' is not a number of bytes; write the size in bytes, or -"),
        (3, "nothex", "sha256 'nothex' is not 64 hex digits"),
        (5, "lots", "n_ctx 'lots' is not a positive number of tokens"),
    ],
)
def test_catalogue_with_a_bad_number(tmp_path, column, value, message):
    lines = MODELS.read_text().splitlines()
    number, first = next((i, line) for i, line in enumerate(lines, start=1) if line and not line.startswith("#"))
    fields = first.split()
    fields[column] = value
    lines[number - 1] = "  ".join(fields)
    bad = tmp_path / "models.txt"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelError, match=rf"models.txt:{number}: {message}"):
        load_catalogue(bad)
    line = one_line_error({"RAG_MODELS_FILE": str(bad)}, "models")
    assert f"models.txt:{number}: " in line and message.split(";")[0] in line


def test_a_data_dir_the_system_refuses_is_one_line(small_corpus, hashed_assistants):
    line = one_line_error({"RAG_HOME": "/proc/not-a-place-for-data"}, "ingest", str(small_corpus))
    assert line.startswith("Error: /proc/not-a-place-for-data: ") and "RAG_HOME" in line


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("RAG_SERVER_URL", "http://127.0.0.1:notaport", "the port 'notaport' is not a port number (1-65535)"),
        ("RAG_SERVER_PROBE_URL", "http://127.0.0.1:99999", "the port '99999' is not a port number (1-65535)"),
        ("RAG_BASE_URL", "http://[::1", "not a URL (Invalid IPv6 URL; an IPv6 address needs both brackets"),
        ("RAG_EMBEDDING_BASE_URL", "127.0.0.1:8080", "not an http or https URL with a host"),
        ("RAG_CHROMA_URL", "http://chroma host:8000", "holds spaces or control characters"),
    ],
)
def test_a_url_setting_that_is_not_a_url_is_one_line_naming_it(name, value, problem):
    # RAG_SERVER_URL=http://127.0.0.1:notaport was a 61-line traceback from httpx at the first request
    for command in (("stats",), ("ask", "what is a graph?")) if name == "RAG_SERVER_URL" else (("stats",),):
        line = one_line_error({name: value}, *command)
        assert line.startswith(f"Error: invalid setting {name}={value}: {problem}"), line
        assert line.endswith("give a URL of the form http[s]://host:port")


def test_a_base_url_option_that_is_not_a_url_is_one_line(rag_home, small_corpus, hash_embedder):
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(small_corpus)], obj={"embedder": hash_embedder}).exit_code == 0
    result = runner.invoke(
        cli, ["ask", "--base-url", "http://[::1", "-m", "openai:m", "what is a graph?"], obj={"embedder": hash_embedder}
    )
    assert result.exit_code == 1, result.exception  # it was a ValueError traceback from urllib
    assert result.stderr.strip().splitlines() == [
        "Error: invalid --base-url=http://[::1: not a URL (Invalid IPv6 URL; an IPv6 address needs both "
        "brackets: http://[::1]:8080); give a URL of the form http[s]://host:port"
    ]


def test_a_value_set_after_loading_is_validated_as_the_variable_is(rag_home):
    # Issue 27, item 3: CLI values were assigned onto Settings without validation.
    from pydantic import ValidationError

    from rag import Settings, SettingsError

    settings = Settings.load()
    with pytest.raises(ValidationError):
        settings.models.embed_batch_size = 0
    with pytest.raises(SettingsError, match=r"^invalid --base-url=ftp:/x: "):
        settings.set("base_url", "ftp:/x", "--base-url")
    assert settings.models.base_url is None and settings.models.embed_batch_size == 16  # nothing half-set
    settings.set("base_url", "http://127.0.0.1:8080/v1", "--base-url")
    assert settings.models.base_url == "http://127.0.0.1:8080/v1"


def test_url_settings_that_are_urls_or_empty_are_kept():
    settings = Settings.load(base_url=" http://[::1]:8080/v1 ", server_probe_url="", server_url="https://h.example")
    assert settings.models.base_url == "http://[::1]:8080/v1" and settings.server.server_probe_url == ""


@pytest.mark.parametrize(
    "link, problem",
    [
        ("broken", "is a broken symbolic link (to {tmp}/nowhere)"),
        ("loop", "is a symbolic link loop"),
    ],
)
@pytest.mark.parametrize("below", [False, True])
def test_home_that_is_a_link_to_nowhere(tmp_path, small_corpus, link, problem, below):
    # it said "File exists" (ingest) or "no index in ...; run rag ingest" (stats, search)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    home = tmp_path / link / "sub" if below else tmp_path / link
    expected = (
        f"Error: invalid setting RAG_HOME={home}: {tmp_path / link} {problem.format(tmp=tmp_path)}; "
        "fix or remove the link, or point RAG_HOME at a directory"
    )
    for command in (("ingest", str(small_corpus)), ("stats",)):
        assert one_line_error({"RAG_HOME": str(home)}, *command) == expected
    assert one_line_error({}, "--home", str(home), "stats") == expected
