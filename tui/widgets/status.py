"""The status line (model, corpus size, the running stage or the selected answer's timings) and the
progress bar of long tasks."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar, Static

from rag import Answer

from ..timing import WallClock, format_timings


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
        if not kept:
            return pieces[2][:width] if len(pieces) > 2 else pieces[0][:width]
        return " │ ".join(pieces[i] for i in sorted(kept)).replace(" │ = ", " = ")

    def show_answer(self, answer: Answer | None, clock: WallClock | None = None) -> None:
        self.detail = tuple(format_timings(answer, clock))

    def show_stage(self, stage: str) -> None:
        self.detail = (stage,)


class TaskBar(Horizontal):
    """A label and a progress bar for model loading and indexing; hidden when idle."""

    def compose(self):
        yield Label("", id="task-label")
        yield ProgressBar(total=None, show_eta=False, id="task-bar")

    @property
    def active(self) -> bool:
        return self.has_class("-active")

    @property
    def label(self) -> str:
        return str(self.query_one(Label).content)

    def start(self, label: str, total: int | None = None) -> None:
        self.query_one(Label).update(label)
        self.query_one(ProgressBar).update(total=total, progress=0)
        self.add_class("-active")

    def relabel(self, label: str) -> None:
        self.query_one(Label).update(label)

    def advance(self, advance: int, total: int | None) -> None:
        bar = self.query_one(ProgressBar)
        if total and bar.total != total:
            bar.update(total=total)
        if advance:
            bar.advance(advance)

    def finish(self) -> None:
        self.remove_class("-active")
