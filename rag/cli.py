"""The `rag` command: a thin layer over `rag.Assistant` (answers to stdout, diagnostics to stderr)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from .errors import RagError
from .settings import Settings


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _assistant(ctx: click.Context):
    if "assistant" not in ctx.obj:
        from .assistant import Assistant  # heavy: keep `rag --help` fast

        ctx.obj["assistant"] = Assistant(_settings(ctx))
    return ctx.obj["assistant"]


def _err(message: str) -> None:
    click.echo(message, err=True)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(stage: str, advance: int, total: int) -> None:
            bar.update(task, advance=advance, total=total)

        yield update


def _ingest(ctx: click.Context, paths, rebuild: bool):
    with progress_bar("Embedding chunks") as update:
        return _assistant(ctx).ingest(paths, rebuild=rebuild, progress=update)


def _ensure_index(ctx: click.Context) -> None:
    """The first question on a fresh install builds the index of the bundled corpus."""
    assistant = _assistant(ctx)
    if not assistant.index.exists():
        _err(f"First run: indexing the bundled corpus into {assistant.settings.index_dir} (once) ...")
        with progress_bar("Embedding chunks") as update:
            assistant.ensure_index(update)


class RagGroup(click.Group):
    """Turns library errors into one line on stderr, Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RagError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            _err("interrupted")
            ctx.exit(130)


@click.group(cls=RagGroup)
@click.option("--home", type=click.Path(path_type=Path), envvar="RAG_HOME", help="Data dir (default: per-user data dir).")
@click.version_option(package_name="rag-abstracts")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """A local, private assistant that answers questions from paper abstracts, with citations."""
    ctx.ensure_object(dict)
    ctx.obj["settings"] = Settings(home=home) if home else Settings()


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Start from an empty index.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], rebuild: bool, as_json: bool) -> None:
    """Index corpus files or folders (default: the bundled abstracts).

    Formats: page dumps (.txt), JSON Lines / arXiv metadata (.jsonl, .json), BibTeX (.bib), CSV (.csv).
    Unchanged papers are not embedded again.
    """
    report = _ingest(ctx, list(paths) or None, rebuild)
    for problem in report.problems:
        _err(f"warning: {problem}")
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    _err(
        f"{report.files} files, {report.papers_read} papers read, {report.unique_papers} unique: "
        f"{report.added} added, {report.replaced} replaced, {report.unchanged} unchanged "
        f"({report.chunks_added} chunks embedded) in {report.seconds:.1f} s"
    )


@cli.command()
@click.argument("question")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100), help="Number of passages.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid", show_default=True)
@click.option("--source", help="Only papers from sources containing this text.")
@click.option("--year", type=int, help="Only papers from this year.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(ctx: click.Context, question: str, k: int, mode: str, source: str | None, year: int | None, as_json: bool) -> None:
    """Show the passages that best match QUESTION (one per paper)."""
    from .assistant import clean_question

    clean_question(question)  # fail on an empty question before any model loads
    _ensure_index(ctx)
    hits = _assistant(ctx).search(question, k=k, mode=mode, source=source, year=year)
    if as_json:
        click.echo(json.dumps({
            "query": question,
            "hits": [
                {"rank": rank, "paper_id": h.paper_id, "title": h.title, "score": round(h.score, 6), "text": h.text}
                for rank, h in enumerate(hits, start=1)
            ],
        }, indent=2))
        return
    if not hits:
        _err("no matching passages")
    for rank, hit in enumerate(hits, start=1):
        click.echo(click.style(f"{rank:>2}. {hit.title}", bold=True) + click.style(f"  [{hit.paper_id}] {hit.score:.4f}", dim=True))
        click.echo(f"    {hit.text[:300]}{'...' if len(hit.text) > 300 else ''}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """What is in the index."""
    s = _assistant(ctx).stats()
    if as_json:
        click.echo(s.model_dump_json(indent=2))
        return
    click.echo(f"data dir:        {s.home}")
    click.echo(f"papers:          {s.papers}")
    click.echo(f"chunks:          {s.chunks} ({s.vectors} vectors)")
    click.echo(f"embedding model: {s.embedding_model} ({s.dimension}-d)")
    click.echo(f"sources:         {len(s.sources)}")
    click.echo(f"size on disk:    {s.disk_bytes / 1e6:.1f} MB")


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
