"""`rag ingest`, `rag search`, `rag stats`, `rag models` and `rag doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rag.cli.context import (
    assistant_of,
    cli,
    ensure_index,
    ingest_with_progress,
    settings_of,
)
from rag.cli.output import (
    print_json,
    progress_bar,
    say,
    warn,
)
from rag.safety import terminal_safe

if TYPE_CHECKING:
    from rag.answer.retrieve import Mode


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--rebuild",
    is_flag=True,
    help="Embed into a new index that replaces the current one when complete (no PATH: the papers already indexed).",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    metavar="CAT",
    help="Only papers in this arXiv category or its subcategories (cs.CL; cs takes all cs.*). Repeatable.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after the first N distinct papers of the input (after --category); run again to resume.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    rebuild: bool,
    categories: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """Index corpus files or folders (default: the bundled abstracts).

    Formats: page dumps (.txt), JSON Lines / arXiv metadata snapshot (.jsonl, .json), BibTeX (.bib),
    CSV (.csv). JSON Lines files are read as they are embedded (memory stays flat at any size).
    Unchanged papers are not embedded again; an ingest cut short resumes when run again.
    """
    report = ingest_with_progress(ctx, list(paths) or None, rebuild, limit, categories)
    for problem in report.problems:
        warn(f"warning: {problem}")
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    left_out = f" ({report.left_out} not in {', '.join(categories)})" if categories else ""
    warn(
        f"{report.files} files, {report.papers_read} papers read{left_out}, {report.unique_papers} unique: "
        f"{report.added} added, {report.replaced} replaced, {report.unchanged} unchanged "
        f"({report.chunks_added} chunks embedded) in {report.seconds:.1f} s"
    )
    if report.sanitized:
        warn(f"{report.sanitized} papers held control characters or terminal escape sequences; they were removed")


@cli.command()
@click.argument("question")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100), help="Number of passages.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid", show_default=True)
@click.option("--source", help="Only papers from sources containing this text.")
@click.option("--author", help="Only papers with an author whose name holds these words ('hinton', 'Geoffrey Hinton').")
@click.option("--year", type=int, help="Only papers from this year.")
@click.option("--since", type=int, metavar="YEAR", help="Only papers from this year or later.")
@click.option("--until", type=int, metavar="YEAR", help="Only papers from this year or earlier.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(
    ctx: click.Context,
    question: str,
    k: int,
    mode: Mode,
    source: str | None,
    author: str | None,
    year: int | None,
    since: int | None,
    until: int | None,
    as_json: bool,
) -> None:
    """Show the passages that best match QUESTION (one per paper)."""
    from rag.answer.questions import clean_question
    from rag.store.filters import Filters

    clean_question(question)  # fail on an empty question before any model loads
    ensure_index(ctx)
    filters = Filters.of(source=source, author=author, year=year, since=since, until=until)
    hits = assistant_of(ctx).search(question, k=k, mode=mode, filters=filters)
    if as_json:
        from rag.types import SearchReport

        print_json(SearchReport.of(question, hits).model_dump(mode="json"))
        return
    if not hits:
        problem = assistant_of(ctx).filter_problem(filters)
        warn(f"no matching passages: {problem}" if problem else "no matching passages")
    for rank, hit in enumerate(hits, start=1):
        click.echo(
            click.style(f"{rank:>2}. {terminal_safe(hit.title)}", bold=True)
            + click.style(f"  [{hit.paper_id}] {hit.score:.4f}", dim=True)
        )
        say(f"    {hit.text[:300]}{'...' if len(hit.text) > 300 else ''}")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the model catalogue (models.txt) and what is present locally."""
    if ctx.invoked_subcommand is not None:
        return
    from rag.backends.models import ModelRegistry

    rows = ModelRegistry(settings_of(ctx)).status()
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    for row in rows:
        size = f"{row.size / 1e9:.2f} GB" if row.size else "?"
        mark = "*" if row.default else " "
        where = f"  {row.path}" if row.path else ""  # the file to give a model server (README: Scaling out)
        say(f"{mark} {row.name:<24} {size:>8}  {row.state}{where}")
    click.echo("(* default; choose with --model NAME or RAG_MODEL)")


@models.command("pull")
@click.argument("name")
@click.pass_context
def models_pull(ctx: click.Context, name: str) -> None:
    """Fetch a hub-hosted model of the catalogue (needs the network)."""
    from rag.backends.models import ModelRegistry

    with progress_bar(f"Fetching {name}") as update:
        path = ModelRegistry(settings_of(ctx)).pull(name, update)
    say(str(path))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """What is in the index."""
    s = assistant_of(ctx).stats()
    if as_json:
        print_json(s.model_dump(mode="json"))
        return
    say(f"data dir:        {s.home}")
    click.echo(f"papers:          {s.papers}")
    say(f"chunks:          {s.chunks} ({s.vectors} vectors, {s.vector_store})")
    say(f"embedding model: {s.embedding_model} ({s.dimension}-d)")
    if s.paper_model:
        say(f"paper model:     {s.paper_model} ({s.paper_vectors} of {s.papers} papers have its vector)")
    click.echo(f"sources:         {len(s.sources)}")
    click.echo(f"size on disk:    {s.disk_bytes / 1e6:.1f} MB")


@cli.command()
@click.option("--verify", is_flag=True, help="Re-hash the model files (sha256; a few seconds per GB).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def doctor(ctx: click.Context, verify: bool, as_json: bool) -> None:
    """Check the install: versions, data dir, models, index, llama.cpp build, network needs."""
    from rag.doctor import diagnose

    report = diagnose(settings_of(ctx), verify=verify)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        colours = {"ok": "green", "info": None, "warn": "yellow", "fail": "red"}
        section = None
        for check in report.checks:
            if check.section != section:
                section = check.section
                click.echo(click.style(section, bold=True))
            mark = click.style(f"{check.status:<4}", fg=colours[check.status])
            click.echo(f"  {mark} {check.name:<22} {terminal_safe(check.detail)}")
    if report.failed:
        ctx.exit(1)
