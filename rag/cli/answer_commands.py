"""`rag ask`, `rag chat`, `rag serve` and `rag eval`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import click

from rag.cli.context import (
    BASE_URL_HELP,
    MODEL_HELP,
    NO_SERVER_HELP,
    assistant_of,
    choose_model,
    cli,
    ensure_index,
    load_model,
    server_of,
    settings_of,
)
from rag.cli.output import (
    fmt,
    live_answer,
    plain_answer,
    print_json,
    print_references,
    print_scores,
    progress_bar,
    say,
    warn,
)

if TYPE_CHECKING:
    from rag.types import Answer, AnswerEvent

    class Answerer(Protocol):
        """What `rag ask` needs of whoever answers: the Assistant, or a client of a running `rag serve`."""

        def ask(self, question: str) -> Answer: ...

        def events(self, question: str) -> Iterator[AnswerEvent]: ...


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
    choose_model(ctx, model, base_url)
    server = server_of(ctx, model, no_server)
    if server is not None:
        with contextlib.closing(server):
            print_answer(server, question, as_json, events, via={"via": "server", "server": server.url})
        return
    ensure_index(ctx)
    load_model(ctx)  # with progress: the first use assembles the model from its packages
    print_answer(assistant_of(ctx), question, as_json, events, via={"via": "in-process"})


def print_answer(source: Answerer, question: str, as_json: bool, events: bool, via: dict[str, str]) -> None:
    """Print the answer of `source` (the Assistant, or a server's client): the same output either way."""
    if as_json:
        from rag.types import AnswerReport

        answer = source.ask(question)
        for notice in answer.notices:
            warn(f"note: {notice}")
        print_json({**AnswerReport.of(answer).model_dump(mode="json"), **via})
        return
    if events:
        for event in source.events(question):
            click.echo(json.dumps(event.to_dict(report=True)))
        return
    steps = source.events(question)
    answer = live_answer(steps) if sys.stdout.isatty() else plain_answer(steps)
    for notice in answer.notices:
        warn(f"note: {notice}")
    print_references(answer)
    t = answer.timings
    first = f", first token {t.first_token_s:.1f} s" if t.first_token_s is not None else ""
    warn(f"({answer.model or 'no model call'}: retrieve {t.retrieve_s * 1000:.0f} ms{first}, total {t.total_s:.1f} s)")


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
    from rag.scoring import load_qa

    if compare_files:
        old, new = (json.loads(p.read_text()) for p in compare_files)
        for section, name, before, after in ev.compare(old, new):
            delta = (
                f"{after - before:+.3f}" if isinstance(before, (int, float)) and isinstance(after, (int, float)) else ""
            )
            say(f"{section:<28} {name:<22} {fmt(before):>8} -> {fmt(after):>8} {delta}")
        return
    if qa_file is None:
        raise click.UsageError("give a QA file (or --compare OLD NEW)")
    choose_model(ctx, model, base_url)
    items = load_qa(qa_file)
    ensure_index(ctx)
    if not retrieval_only:
        load_model(ctx)
    with progress_bar("Asking", {"answers": "Asking", "naive_rag": "Naive RAG baseline"}) as update:
        report = ev.run_eval(
            assistant_of(ctx),
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
        warn(f"results written to {output}")
    if as_json:
        print_json(result)
        return
    print_scores("Retrieval (hybrid)", result["retrieval"])
    for name, base in (result.get("baselines") or {}).items():
        for section, scores in base.items():
            print_scores(f"Baseline {name}: {section}", scores)
    if result.get("stages"):
        print_scores(
            "Where answerable questions are lost (gold paper shown, expected answer shown, hit)", result["stages"]
        )
    if "answers" in result:
        print_scores(f"Answers ({result['model']})", result["answers"])


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

    choose_model(ctx, model, base_url)
    server = server_of(ctx, chosen_model(settings_of(ctx)), no_server)
    make_app(settings_of(ctx), question=question, server=server).run()


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
    from rag.serve.http import check_host
    from rag.serve.server import serve as run_server

    token = settings_of(ctx).server.server_token
    check_host(host, token.get_secret_value() if token else None)  # before anything loads
    choose_model(ctx, model, base_url)
    ensure_index(ctx)
    load_model(ctx)
    assistant = assistant_of(ctx)
    warn(f"Serving {assistant.model_name} on http://{host}:{port}/v1 (Ctrl-C stops)")
    try:
        run_server(assistant, host, port)
    finally:
        assistant.close()
