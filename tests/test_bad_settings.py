"""Settings and paths that used to end in a traceback: each is one line that names the problem and
what to do, with a non-zero exit."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rag import Settings
from rag.cli import cli
from rag.errors import ModelError, SettingsError
from rag import resources
from rag.models import load_catalogue

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
    assert line == ("Error: invalid setting RAG_CHROMA_HEADERS: not valid JSON; give a JSON object, "
                    "e.g. '{\"Authorization\": \"Bearer TOKEN\"}'")
    line = one_line_error({"RAG_CHROMA_HEADERS": '{"Authorization": ["Bearer", "secret-token"]}'})
    assert "RAG_CHROMA_HEADERS" in line and "secret-token" not in line  # header values are never echoed


def test_home_that_is_a_file(a_file):
    line = one_line_error({"RAG_HOME": str(a_file)})
    assert line == f"Error: invalid setting RAG_HOME={a_file}: is a file, not a directory; give a directory (it is created if missing)"
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


@pytest.mark.parametrize("column, value, message", [
    (2, "1.1GB", "size '1.1GB' is not a number of bytes; write the size in bytes, or -"),
    (3, "nothex", "sha256 'nothex' is not 64 hex digits"),
    (5, "lots", "n_ctx 'lots' is not a positive number of tokens"),
])
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


def test_a_data_dir_the_system_refuses_is_one_line(small_corpus):
    line = one_line_error({"RAG_HOME": "/proc/not-a-place-for-data"}, "ingest", str(small_corpus))
    assert line.startswith("Error: /proc/not-a-place-for-data: ") and "RAG_HOME" in line
