"""The `rag` group and what its commands share: the settings and the one Assistant of a command,
the model choice, the first-run index, and library errors turned into one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag.cli.output import (
    progress_bar,
    quiet_broken_pipe,
    stdout_gone,
    warn,
)
from rag.datafiles import DataDir
from rag.errors import RagError
from rag.safety import terminal_safe
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.ingest.pipeline import IngestReport
    from rag.serve.client import ServerClient


def settings_of(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


def assistant_of(ctx: click.Context) -> Assistant:
    """The one Assistant of this command. `cli(obj={"embedder": ..., "generator": ...})` passes
    models in (tests, embedding programs); by default they come from the settings."""
    if "assistant" not in ctx.obj:
        from rag.assistant import Assistant  # heavy: keep `rag --help` fast

        ctx.obj["assistant"] = Assistant(
            settings_of(ctx), embedder=ctx.obj.get("embedder"), generator=ctx.obj.get("generator")
        )
        for embedder in (ctx.obj["assistant"].embedder, ctx.obj["assistant"].paper_embedder):
            if hasattr(embedder, "on_prepare"):
                embedder.on_prepare = warn  # the one-time preparation of a model says so
    assistant: Assistant = ctx.obj["assistant"]
    return assistant


def ingest_with_progress(
    ctx: click.Context,
    paths: list[Path] | None,
    rebuild: bool,
    limit: int | None = None,
    categories: tuple[str, ...] = (),
) -> IngestReport:
    with progress_bar("Embedding chunks") as update:
        return assistant_of(ctx).ingest(
            paths, rebuild=rebuild, progress=update, on_wait=warn, limit=limit, categories=categories
        )


def ensure_index(ctx: click.Context) -> None:
    """The first question on a fresh install builds the index of the bundled corpus."""
    assistant = assistant_of(ctx)
    if assistant.has_index():
        return
    if not assistant.first_run:
        assistant.ensure_index()  # a lost index: says what it held instead of indexing other papers
    warn(f"First run: indexing the bundled corpus into {assistant.settings.index_dir} (once) ...")
    with progress_bar("Embedding chunks") as update:
        assistant.ensure_index(update, on_wait=warn)


class RagGroup(click.Group):
    """Turns library errors into one line on stderr, Ctrl-C into exit 130, a closed stdout into a quiet exit 141."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            if not stdout_gone():
                raise  # a pipe of our own, not stdout: a bug worth its traceback
            quiet_broken_pipe(ctx)
        except RagError as exc:
            raise click.ClickException(terminal_safe(str(exc))) from exc
        except (sqlite3.DatabaseError, OSError) as exc:  # a damaged page the open-time checks did not reach
            from rag.store.catalog_base import damaged
            from rag.store.datadir import storage_problem

            settings = ctx.obj.get("settings")
            home = settings.home if settings else Path.cwd()
            if problem := storage_problem(exc, home):
                raise click.ClickException(str(problem)) from exc
            if isinstance(exc, OSError):  # a data dir, model or corpus path the system refuses
                where = f"{exc.filename}: " if exc.filename else ""
                raise click.ClickException(
                    terminal_safe(
                        f"{where}{exc.strerror or exc}; check that the path exists and that you may write there "
                        "(RAG_HOME, RAG_MODELS_HOME)"
                    )
                ) from exc
            raise click.ClickException(str(damaged(DataDir(home).index.catalog, str(exc)))) from exc
        except KeyboardInterrupt:
            warn("interrupted")
            ctx.exit(130)


@click.group(cls=RagGroup)
@click.option(
    "--home", type=click.Path(path_type=Path), help="Data dir (default: RAG_HOME, else the per-user data dir)."
)
@click.option(
    "--chroma-url",
    metavar="URL",
    help="Keep the vectors on this Chroma server (http://host:port; default: RAG_CHROMA_URL); auth headers: RAG_CHROMA_HEADERS.",
)
@click.version_option(package_name="rag-abstracts", prog_name="rag-abstracts")  # looked up only for --version
@click.pass_context
def cli(ctx: click.Context, home: Path | None, chroma_url: str | None) -> None:
    """A local, private assistant that answers questions from paper abstracts, with citations."""
    ctx.ensure_object(dict)
    given = {"home": home, "chroma_url": chroma_url}
    ctx.obj["settings"] = Settings.load(**{name: value for name, value in given.items() if value})


def load_model(ctx: click.Context) -> None:
    from rag.backends.models import parse_model_spec

    assistant = assistant_of(ctx)
    if not assistant.model_loaded:
        settings = assistant.settings
        remote = settings.models.model is not None and parse_model_spec(settings.models.model).kind == "server"
        warn(
            f"Connecting to {settings.models.model} at {settings.models.base_url} ..."
            if remote
            else "Loading the language model ..."
        )
        with progress_bar("Assembling model (once)") as update:
            assistant.load(update)  # the index and the embedder open meanwhile


MODEL_HELP = (
    "Model name from models.txt, a path to a .gguf file, or openai:NAME (served at --base-url); default: RAG_MODEL."
)


BASE_URL_HELP = (
    "OpenAI-compatible server for openai:NAME models, e.g. http://127.0.0.1:8080/v1 (default: RAG_BASE_URL)."
)


def choose_model(ctx: click.Context, model: str | None, base_url: str | None) -> None:
    # The Assistant is built from this same Settings object.
    if model:
        settings_of(ctx).set("model", model, "--model")
    if base_url:
        settings_of(ctx).set("base_url", base_url, "--base-url")


NO_SERVER_HELP = "Answer in this process even if a `rag serve` runs (RAG_SERVER_URL, or one on 127.0.0.1:8765)."


def server_of(ctx: click.Context, model: str | None, no_server: bool) -> ServerClient | None:
    """The running `rag serve` to answer through (see rag/serve/client.py), or None to answer here."""
    if no_server:
        return None
    from rag.serve.client import find_server

    return find_server(settings_of(ctx), model, warn)
