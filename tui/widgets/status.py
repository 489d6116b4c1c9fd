"""The status line (model, corpus size, the running stage or the selected answer's timings) and the
progress bar of long tasks."""

from __future__ import annotations

import time

from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar, Static

from rag import Answer

from ..timing import WallClock, format_timings


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class StatusLine(Static):
    """model · papers · what the selected answer is doing, or where its time went."""

    model: reactive[str] = reactive("")
    model_state: reactive[str] = reactive("")
    papers: reactive[int | None] = reactive(None)
    detail: reactive[tuple[str, ...]] = reactive(("no answer yet",))

    def render(self) -> str:
        model = self.model or "?"
        if self.model_state:
            model += f" ({self.model_state})"
        papers = "… papers" if self.papers is None else f"{self.papers} papers"
        pieces = [f"model {model}", papers, *self.detail]
        # Keep what fits: the stage or the total first, where the time went, the model calls, the model, the papers.
        width = max(self.size.width - 2, 20)
        order = [i for i in (2, 3, 4, 0, 1, *range(5, len(pieces))) if i < len(pieces)]
        kept: set[int] = set()
        for index in order:
            candidate = kept | {index}
            if len(" │ ".join(pieces[i] for i in sorted(candidate))) <= width:
                kept = candidate
        first = order[0]
        if first not in kept:  # the stage or the total comes first, cut to the width if it must be
            return cut(pieces[first], width)
        return " │ ".join(pieces[i] for i in sorted(kept)).replace(" │ = ", " = ")

    def show_answer(self, answer: Answer | None, clock: WallClock | None = None) -> None:
        self.detail = tuple(format_timings(answer, clock))

    def show_stage(self, stage: str) -> None:
        self.detail = (stage,)


class TaskBar(Horizontal):
    """A label, a progress bar and what is done (`1,024/2,763 · 12s`, or the seconds alone while the
    total is not known) for model loading and indexing; hidden when idle."""

    def compose(self):
        yield Label("", id="task-label")
        yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="task-bar")
        yield Label("", id="task-count")

    def on_mount(self) -> None:
        self._started = time.monotonic()
        self.set_interval(1.0, self._show_count)

    @property
    def active(self) -> bool:
        return self.has_class("-active")

    @property
    def label(self) -> str:
        return str(self.query_one("#task-label", Label).content)

    @property
    def count(self) -> str:
        return str(self.query_one("#task-count", Label).content)

    def start(self, label: str, total: int | None = None) -> None:
        self.query_one("#task-label", Label).update(label)
        self.query_one(ProgressBar).update(total=total, progress=0)
        if not self.active:
            self._started = time.monotonic()
        self.add_class("-active")
        self._show_count()

    def relabel(self, label: str) -> None:
        self.query_one("#task-label", Label).update(label)

    def advance(self, advance: int, total: int | None) -> None:
        bar = self.query_one(ProgressBar)
        if total and bar.total != total:
            bar.update(total=total)
        if advance:
            bar.advance(advance)
        self._show_count()

    def _show_count(self) -> None:
        if not self.active:
            return
        bar = self.query_one(ProgressBar)
        seconds = f"{time.monotonic() - self._started:.0f}s"
        done = f"{bar.progress:,.0f}/{bar.total:,.0f} · " if bar.total else ""
        self.query_one("#task-count", Label).update(done + seconds)

    def finish(self) -> None:
        self.remove_class("-active")
