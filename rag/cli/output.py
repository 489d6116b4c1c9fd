"""Printing for the terminal: answers and tables to stdout, diagnostics to stderr, progress bars,
and a quiet exit when the reader of stdout goes away."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from rag.safety import terminal_safe

if TYPE_CHECKING:
    from rag.types import Answer, AnswerEvent


# progress(stage, advance, total), as the library reports it
Update = Callable[[str, int, int], None]


def print_json(data: Any) -> None:
    """JSON to stdout; json.dumps escapes every control and non-ASCII character."""
    click.echo(json.dumps(data, indent=2))


def say(text: str = "", *, nl: bool = True) -> None:
    """Text to stdout, without control characters or escape sequences (corpus and model text is untrusted)."""
    click.echo(terminal_safe(text), nl=nl)


def warn(message: str) -> None:
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


# 128 + SIGPIPE: what a shell reports for `cat big | head -1`'s cat; Python ignores SIGPIPE and gets EPIPE instead.
EXIT_BROKEN_PIPE = 141


def stdout_gone() -> bool:
    """Whether stdout's reader has gone away (a pipe whose other end is closed reports POLLERR)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), 0)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout (tests)
        return False


def quiet_broken_pipe(ctx: click.Context) -> None:
    """The reader of stdout went away (`rag stats | head -1`): stop silently, as Unix tools do.

    stdout is pointed at /dev/null so that the interpreter's last flush at exit finds no pipe to fail on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    ctx.exit(EXIT_BROKEN_PIPE)


def print_references(answer: Answer) -> None:
    if answer.citations:
        say("\nReferences:")
        for c in answer.citations:
            say(f"[{c.key}] {c.title}")


def plain_answer(steps: Iterator[AnswerEvent]) -> Answer:
    """Verified sentences only, as they are checked (for pipes and files)."""
    answer: Answer | None = None
    for event in steps:
        if event.kind == "sentence":
            say(event.text, nl=False)
        elif event.answer is not None:
            answer = event.answer
    say()
    if answer is None:  # pragma: no cover - only a cancelled stream has none
        raise click.ClickException("the answer was cancelled before it was complete; ask again")
    return answer


def live_answer(steps: Iterator[AnswerEvent]) -> Answer:
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


def fmt(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def print_scores(title: str, scores: dict[str, dict[str, Any]]) -> None:
    say(f"\n{title}")
    names = list(next(iter(scores.values())).keys()) if scores else []
    say("| type | " + " | ".join(names) + " |")
    click.echo("|---" * (len(names) + 1) + "|")
    for group, metrics in scores.items():
        say(f"| {group} | " + " | ".join(fmt(metrics[n]) for n in names) + " |")
