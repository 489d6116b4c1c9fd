"""The prompt templates and the model catalogue are found in the installed package, else in the checkout."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import rag.resources
from rag import Settings, __version__
from rag.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def test_a_checkout_reads_the_files_at_the_top_of_the_repository():
    settings = Settings()
    assert settings.answer.prompts_dir == ROOT / "prompts"
    assert settings.models.models_file == ROOT / "models.txt"


def test_the_copy_inside_an_installed_package_wins(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "rag"
    (package / "data" / "prompts").mkdir(parents=True)
    (package / "data" / "models.txt").write_text("# catalogue\n")
    monkeypatch.setattr(rag.resources, "files", lambda name: package)
    assert rag.resources.prompts_dir() == package / "data" / "prompts"
    assert rag.resources.models_file() == package / "data" / "models.txt"


def test_a_damaged_install_names_where_the_file_should_be(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "rag"
    package.mkdir(parents=True)
    monkeypatch.setattr(rag.resources, "files", lambda name: package)
    monkeypatch.setattr(rag.resources, "_CHECKOUT", tmp_path / "no-checkout")
    assert rag.resources.models_file() == package / "data" / "models.txt"


def test_version():
    result = CliRunner().invoke(cli, ["--version"], obj={})
    assert result.exit_code == 0 and result.output.strip() == f"rag-abstracts, version {__version__}"
    assert __version__[0].isdigit()
