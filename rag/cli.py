"""The `rag` command: a thin layer over `rag.Assistant` (answers to stdout, diagnostics to stderr)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

from rag.datafiles import DataDir
from rag.errors import RagError
from rag.safety import terminal_safe
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answer.retrieve import Mode
    from rag.assistant import Assistant
    from rag.ingest.pipeline import IngestReport
    from rag.serve.client import ServerClient
    from rag.types import Answer, AnswerEvent

    class Answerer(Protocol):
        """What `rag ask` needs of whoever answers: the Assistant, or a client of a running `rag serve`."""

        def ask(self, question: str) -> Answer: ...

        def events(self, question: str) -> Iterator[AnswerEvent]: ...


# progress(stage, advance, total), as the library reports it
Update = Callable[[str, int, int], None]


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


def _assistant(ctx: click.Context) -> Assistant:
    """The one Assistant of this command. `cli(obj={"embedder": ..., "generator": ...})` passes
    models in (tests, embedding programs); by default they come from the settings."""
    if "assistant" not in ctx.obj:
        from rag.assistant import Assistant  # heavy: keep `rag --help` fast

        ctx.obj["assistant"] = Assistant(
            _settings(ctx), embedder=ctx.obj.get("embedder"), generator=ctx.obj.get("generator")
        )
        for embedder in (ctx.obj["assistant"].embedder, ctx.obj["assistant"].paper_embedder):
            if hasattr(embedder, "on_prepare"):
                embedder.on_prepare = _err  # the one-time preparation of a model says so
    assistant: Assistant = ctx.obj["assistant"]
    return assistant


def _print_json(data: Any) -> None:
    """JSON to stdout; json.dumps escapes every control and non-ASCII character."""
    click.echo(json.dumps(data, indent=2))


def _out(text: str = "", *, nl: bool = True) -> None:
    """Text to stdout, without control characters or escape sequences (corpus and model text is untrusted)."""
    click.echo(terminal_safe(text), nl=nl)


def _err(message: str) -> None:
    click.echo(terminal_safe(message), err=True)


@contextlib.contextmanager
def progress_bar(description: str, stages: dict[str, str] | None = None) -> Iterator[Update | None]:
    """A rich progress bar on stderr when it is a terminal; silent otherwise.

    The bar appears with the first progress report: work that turns out not to be needed (a model
    already assembled) draws nothing. `stages` names the stages whose start restarts the bar under
    a new description.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    shown: list[tuple[Progress, TaskID]] = []
    current: list[str] = []

    def update(stage: str, advance: int, total: int) -> None:
        if not shown:
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            bar.start()
            shown.append((bar, bar.add_task(description, total=None)))
        bar, task = shown[0]
        if stages and stage in stages and current != [stage]:
            current[:] = [stage]
            bar.reset(task, total=total, description=stages[stage])
        bar.update(task, advance=advance, total=total)

    try:
        yield update
    finally:
        if shown:
            shown[0][0].stop()


def _ingest(
    ctx: click.Context,
    paths: list[Path] | None,
    rebuild: bool,
    limit: int | None = None,
    categories: tuple[str, ...] = (),
) -> IngestReport:
    with progress_bar("Embedding chunks") as update:
        return _assistant(ctx).ingest(
            paths, rebuild=rebuild, progress=update, on_wait=_err, limit=limit, categories=categories
        )


def _ensure_index(ctx: click.Context) -> None:
    """The first question on a fresh install builds the index of the bundled corpus."""
    assistant = _assistant(ctx)
    if assistant.has_index():
        return
    if not assistant.first_run:
        assistant.ensure_index()  # a lost index: says what it held instead of indexing other papers
    _err(f"First run: indexing the bundled corpus into {assistant.settings.index_dir} (once) ...")
    with progress_bar("Embedding chunks") as update:
        assistant.ensure_index(update, on_wait=_err)


# 128 + SIGPIPE: what a shell reports for `cat big | head -1`'s cat; Python ignores SIGPIPE and gets EPIPE instead.
EXIT_BROKEN_PIPE = 141


def _stdout_gone() -> bool:
    """Whether stdout's reader has gone away (a pipe whose other end is closed reports POLLERR)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), 0)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout (tests)
        return False


def _quiet_broken_pipe(ctx: click.Context) -> None:
    """The reader of stdout went away (`rag stats | head -1`): stop silently, as Unix tools do.

    stdout is pointed at /dev/null so that the interpreter's last flush at exit finds no pipe to fail on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    ctx.exit(EXIT_BROKEN_PIPE)


class RagGroup(click.Group):
    """Turns library errors into one line on stderr, Ctrl-C into exit 130, a closed stdout into a quiet exit 141."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            if not _stdout_gone():
                raise  # a pipe of our own, not stdout: a bug worth its traceback
            _quiet_broken_pipe(ctx)
        except RagError as exc:
            raise click.ClickException(terminal_safe(str(exc))) from exc
        except (sqlite3.DatabaseError, OSError) as exc:  # a damaged page the open-time checks did not reach
            from rag.store.catalog import damaged
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
            _err("interrupted")
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
    report = _ingest(ctx, list(paths) or None, rebuild, limit, categories)
    for problem in report.problems:
        _err(f"warning: {problem}")
    if as_json:
        _print_json(report.model_dump(mode="json"))
        return
    left_out = f" ({report.left_out} not in {', '.join(categories)})" if categories else ""
    _err(
        f"{report.files} files, {report.papers_read} papers read{left_out}, {report.unique_papers} unique: "
        f"{report.added} added, {report.replaced} replaced, {report.unchanged} unchanged "
        f"({report.chunks_added} chunks embedded) in {report.seconds:.1f} s"
    )
    if report.sanitized:
        _err(f"{report.sanitized} papers held control characters or terminal escape sequences; they were removed")


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

    clean_question(question)  # fail on an empty question before any model loads
    _ensure_index(ctx)
    hits = _assistant(ctx).search(
        question, k=k, mode=mode, source=source, author=author, year=year, since=since, until=until
    )
    if as_json:
        from rag.types import SearchReport

        _print_json(SearchReport.of(question, hits).model_dump(mode="json"))
        return
    if not hits:
        problem = _assistant(ctx).filter_problem(source=source, author=author, year=year, since=since, until=until)
        _err(f"no matching passages: {problem}" if problem else "no matching passages")
    for rank, hit in enumerate(hits, start=1):
        click.echo(
            click.style(f"{rank:>2}. {terminal_safe(hit.title)}", bold=True)
            + click.style(f"  [{hit.paper_id}] {hit.score:.4f}", dim=True)
        )
        _out(f"    {hit.text[:300]}{'...' if len(hit.text) > 300 else ''}")


def _load_model(ctx: click.Context) -> None:
    from rag.backends.models import parse_model_spec

    assistant = _assistant(ctx)
    if not assistant.model_loaded:
        settings = assistant.settings
        remote = settings.model is not None and parse_model_spec(settings.model).kind == "server"
        _err(
            f"Connecting to {settings.model} at {settings.base_url} ..." if remote else "Loading the language model ..."
        )
        with progress_bar("Assembling model (once)") as update:
            assistant.load(update)  # the index and the embedder open meanwhile


MODEL_HELP = (
    "Model name from models.txt, a path to a .gguf file, or openai:NAME (served at --base-url); default: RAG_MODEL."
)
BASE_URL_HELP = (
    "OpenAI-compatible server for openai:NAME models, e.g. http://127.0.0.1:8080/v1 (default: RAG_BASE_URL)."
)


def _choose_model(ctx: click.Context, model: str | None, base_url: str | None) -> None:
    # The Assistant is built from this same Settings object.
    if model:
        _settings(ctx).set("model", model, "--model")
    if base_url:
        _settings(ctx).set("base_url", base_url, "--base-url")


def _print_references(answer: Answer) -> None:
    if answer.citations:
        _out("\nReferences:")
        for c in answer.citations:
            _out(f"[{c.key}] {c.title}")


NO_SERVER_HELP = "Answer in this process even if a `rag serve` runs (RAG_SERVER_URL, or one on 127.0.0.1:8765)."


def _server(ctx: click.Context, model: str | None, no_server: bool) -> ServerClient | None:
    """The running `rag serve` to answer through (see rag/serve/client.py), or None to answer here."""
    if no_server:
        return None
    from rag.serve.client import find_server

    return find_server(_settings(ctx), model, _err)


@cli.command()
@click.argument("question")
@click.option("-m", "--model", help=MODEL_HELP)
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (verified text only, no streaming).")
@click.option("--events", is_flag=True, help="Print each step as a JSON line: token, sentence, dropped, done.")
@click.option("--no-server", is_flag=True, help=NO_SERVER_HELP)
@click.pass_context
def ask(
    ctx: click.Context,
    question: str,
    model: str | None,
    base_url: str | None,
    as_json: bool,
    events: bool,
    no_server: bool,
) -> None:
    """Answer QUESTION from the corpus, citing the papers used (or say the corpus does not answer it).

    A running `rag serve` of the same data dir answers it (no start-up cost); --no-server answers here."""
    from rag.answer.questions import clean_question

    clean_question(question)
    _choose_model(ctx, model, base_url)
    server = _server(ctx, model, no_server)
    if server is not None:
        with contextlib.closing(server):
            _answer(server, question, as_json, events, via={"via": "server", "server": server.url})
        return
    _ensure_index(ctx)
    _load_model(ctx)  # with progress: the first use assembles the model from its packages
    _answer(_assistant(ctx), question, as_json, events, via={"via": "in-process"})


def _answer(source: Answerer, question: str, as_json: bool, events: bool, via: dict[str, str]) -> None:
    """Print the answer of `source` (the Assistant, or a server's client): the same output either way."""
    if as_json:
        from rag.types import AnswerReport

        answer = source.ask(question)
        for notice in answer.notices:
            _err(f"note: {notice}")
        _print_json({**AnswerReport.of(answer).model_dump(mode="json"), **via})
        return
    if events:
        for event in source.events(question):
            click.echo(json.dumps(event.to_dict(report=True)))
        return
    steps = source.events(question)
    answer = _live_answer(steps) if sys.stdout.isatty() else _plain_answer(steps)
    for notice in answer.notices:
        _err(f"note: {notice}")
    _print_references(answer)
    t = answer.timings
    first = f", first token {t.first_token_s:.1f} s" if t.first_token_s is not None else ""
    _err(f"({answer.model or 'no model call'}: retrieve {t.retrieve_s * 1000:.0f} ms{first}, total {t.total_s:.1f} s)")


def _plain_answer(steps: Iterator[AnswerEvent]) -> Answer:
    """Verified sentences only, as they are checked (for pipes and files)."""
    answer: Answer | None = None
    for event in steps:
        if event.kind == "sentence":
            _out(event.text, nl=False)
        elif event.answer is not None:
            answer = event.answer
    _out()
    if answer is None:  # pragma: no cover - only a cancelled stream has none
        raise click.ClickException("the answer was cancelled before it was complete; ask again")
    return answer


def _live_answer(steps: Iterator[AnswerEvent]) -> Answer:
    """On a terminal: the model's text as it is written, dim until its sentence is checked; then the
    verified sentence in its place, or a dim line saying why it was not shown."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    verified, pending = "", ""
    notes: list[str] = []
    answer: Answer | None = None

    def view() -> Text:
        text = Text(terminal_safe(verified))
        text.append(terminal_safe(pending), style="dim")
        for note in notes:
            text.append(f"\n  ({terminal_safe(note)})", style="dim italic")
        return text

    with Live(view(), console=Console(), refresh_per_second=20, transient=False) as live:
        for event in steps:
            if event.kind == "token":
                pending += event.text
            elif event.kind == "sentence":
                verified = verified + event.text
                pending = f" {event.pending}" if event.pending else ""
            elif event.kind == "dropped":
                notes.append(f"not shown: {event.reason}")
                pending = f" {event.pending}" if event.pending else ""
            else:
                answer = event.answer
                pending = ""
            live.update(view())
    if answer is None:  # pragma: no cover - only a cancelled stream has none
        raise click.ClickException("the answer was cancelled before it was complete; ask again")
    return answer


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the model catalogue (models.txt) and what is present locally."""
    if ctx.invoked_subcommand is not None:
        return
    from rag.backends.models import ModelRegistry

    rows = ModelRegistry(_settings(ctx)).status()
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    for row in rows:
        size = f"{row.size / 1e9:.2f} GB" if row.size else "?"
        mark = "*" if row.default else " "
        where = f"  {row.path}" if row.path else ""  # the file to give a model server (README: Scaling out)
        _out(f"{mark} {row.name:<24} {size:>8}  {row.state}{where}")
    click.echo("(* default; choose with --model NAME or RAG_MODEL)")


@models.command("pull")
@click.argument("name")
@click.pass_context
def models_pull(ctx: click.Context, name: str) -> None:
    """Fetch a hub-hosted model of the catalogue (needs the network)."""
    from rag.backends.models import ModelRegistry

    with progress_bar(f"Fetching {name}") as update:
        path = ModelRegistry(_settings(ctx)).pull(name, update)
    _out(str(path))


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _print_scores(title: str, scores: dict[str, dict[str, Any]]) -> None:
    _out(f"\n{title}")
    names = list(next(iter(scores.values())).keys()) if scores else []
    _out("| type | " + " | ".join(names) + " |")
    click.echo("|---" * (len(names) + 1) + "|")
    for group, metrics in scores.items():
        _out(f"| {group} | " + " | ".join(_fmt(metrics[n]) for n in names) + " |")


@cli.command("eval")
@click.argument("qa_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--retrieval-only", is_flag=True, help="Score retrieval only (no model).")
@click.option(
    "--context-only",
    is_flag=True,
    help="Score retrieval and what the model would be shown (gold paper, expected answer), without generating.",
)
@click.option(
    "--k", "k", default=5, show_default=True, type=click.IntRange(1, 100), help="Passages retrieved per question."
)
@click.option("-m", "--model", help=MODEL_HELP)
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@click.option("--baselines", is_flag=True, help="Also score BM25 alone, dense alone and a naive RAG pipeline.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the results as JSON here.")
@click.option(
    "--compare",
    "compare_files",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Print the deltas between two result files (OLD NEW) and exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def eval_(
    ctx: click.Context,
    qa_file: Path | None,
    retrieval_only: bool,
    context_only: bool,
    k: int,
    model: str | None,
    base_url: str | None,
    baselines: bool,
    output: Path | None,
    compare_files: tuple[Path, Path] | None,
    as_json: bool,
) -> None:
    """Score retrieval and answers on a QA file (JSON Lines: id, type, question, gold_titles, answer_any, history)."""
    from rag import evaluate as ev

    if compare_files:
        old, new = (json.loads(p.read_text()) for p in compare_files)
        for section, name, before, after in ev.compare(old, new):
            delta = (
                f"{after - before:+.3f}" if isinstance(before, (int, float)) and isinstance(after, (int, float)) else ""
            )
            _out(f"{section:<28} {name:<22} {_fmt(before):>8} -> {_fmt(after):>8} {delta}")
        return
    if qa_file is None:
        raise click.UsageError("give a QA file (or --compare OLD NEW)")
    _choose_model(ctx, model, base_url)
    items = ev.load_qa(qa_file)
    _ensure_index(ctx)
    if not retrieval_only:
        _load_model(ctx)
    with progress_bar("Asking", {"answers": "Asking", "naive_rag": "Naive RAG baseline"}) as update:
        report = ev.run_eval(
            _assistant(ctx),
            items,
            file=qa_file,
            k=k,
            retrieval_only=retrieval_only,
            context_only=context_only,
            baselines=baselines,
            progress=update,
        )
    result = report.model_dump(mode="json")
    if output:
        output.write_text(json.dumps(result, indent=2))
        _err(f"results written to {output}")
    if as_json:
        _print_json(result)
        return
    _print_scores("Retrieval (hybrid)", result["retrieval"])
    for name, base in (result.get("baselines") or {}).items():
        for section, scores in base.items():
            _print_scores(f"Baseline {name}: {section}", scores)
    if result.get("stages"):
        _print_scores(
            "Where answerable questions are lost (gold paper shown, expected answer shown, hit)", result["stages"]
        )
    if "answers" in result:
        _print_scores(f"Answers ({result['model']})", result["answers"])


@cli.command()
@click.argument("question", required=False)
@click.option("-m", "--model", help=MODEL_HELP + " Default: the one last chosen in the chat (F2).")
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@click.option("--no-server", is_flag=True, help=NO_SERVER_HELP)
@click.pass_context
def chat(ctx: click.Context, question: str | None, model: str | None, base_url: str | None, no_server: bool) -> None:
    """Open the terminal chat; with QUESTION, it starts by asking it.

    A running `rag serve` of the same data dir and model writes the answers; --no-server loads the model here."""
    from tui.app import chosen_model, make_app

    _choose_model(ctx, model, base_url)
    server = _server(ctx, chosen_model(_settings(ctx)), no_server)
    make_app(_settings(ctx), question=question, server=server).run()


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (off loopback: RAG_SERVER_TOKEN)."
)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("-m", "--model", help=MODEL_HELP)
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, model: str | None, base_url: str | None) -> None:
    """Serve the assistant over HTTP (OpenAI-compatible /v1/chat/completions, /v1/search) with the model kept loaded."""
    from rag.serve.server import check_host
    from rag.serve.server import serve as run_server

    token = _settings(ctx).server_token
    check_host(host, token.get_secret_value() if token else None)  # before anything loads
    _choose_model(ctx, model, base_url)
    _ensure_index(ctx)
    _load_model(ctx)
    assistant = _assistant(ctx)
    _err(f"Serving {assistant.model_name} on http://{host}:{port}/v1 (Ctrl-C stops)")
    try:
        run_server(assistant, host, port)
    finally:
        assistant.close()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """What is in the index."""
    s = _assistant(ctx).stats()
    if as_json:
        _print_json(s.model_dump(mode="json"))
        return
    _out(f"data dir:        {s.home}")
    click.echo(f"papers:          {s.papers}")
    _out(f"chunks:          {s.chunks} ({s.vectors} vectors, {s.vector_store})")
    _out(f"embedding model: {s.embedding_model} ({s.dimension}-d)")
    if s.paper_model:
        _out(f"paper model:     {s.paper_model} ({s.paper_vectors} of {s.papers} papers have its vector)")
    click.echo(f"sources:         {len(s.sources)}")
    click.echo(f"size on disk:    {s.disk_bytes / 1e6:.1f} MB")


@cli.command()
@click.option("--verify", is_flag=True, help="Re-hash the model files (sha256; a few seconds per GB).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def doctor(ctx: click.Context, verify: bool, as_json: bool) -> None:
    """Check the install: versions, data dir, models, index, llama.cpp build, network needs."""
    from rag.doctor import diagnose

    report = diagnose(_settings(ctx), verify=verify)
    if as_json:
        _print_json(report.model_dump(mode="json"))
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


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
