"""The status line (model, corpus size, last answer's timings) and the progress bar of long tasks."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar, Static

from rag import Answer


def format_timings(answer: Answer | None) -> str:
    if answer is None:
        return "no answer yet"
    t = answer.timings
    parts = [f"retrieve {t.retrieve_s:.2f}s"]
    if t.first_token_s is None:
        parts.append("no model call")
    else:
        parts.append(f"first token {t.first_token_s:.2f}s")
    parts.append(f"total {t.total_s:.2f}s")
    if t.first_token_s is not None and answer.completion_tokens:
        generating = t.total_s - t.first_token_s
        rate = answer.completion_tokens / generating if generating > 0 else 0.0
        parts.append(f"{rate:.1f} tok/s")
    return " · ".join(parts)


class StatusLine(Static):
    """model · papers · timings of the last answer."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    """

    model: reactive[str] = reactive("")
    model_state: reactive[str] = reactive("")
    papers: reactive[int | None] = reactive(None)
    timings: reactive[str] = reactive("no answer yet")

    def render(self) -> str:
        model = self.model or "?"
        if self.model_state:
            model += f" ({self.model_state})"
        papers = "… papers" if self.papers is None else f"{self.papers} papers"
        return f"model {model} │ {papers} │ {self.timings}"

    def show_answer(self, answer: Answer | None) -> None:
        self.timings = format_timings(answer)


class TaskBar(Horizontal):
    """A label and a progress bar for model loading and indexing; hidden when idle."""

    DEFAULT_CSS = """
    TaskBar { height: 1; display: none; padding: 0 1; background: $boost; }
    TaskBar.-active { display: block; }
    TaskBar > Label { width: auto; margin-right: 2; }
    TaskBar > ProgressBar { width: 1fr; }
    """

    def compose(self):
        yield Label("", id="task-label")
        yield ProgressBar(total=None, show_eta=False, id="task-bar")

    @property
    def active(self) -> bool:
        return self.has_class("-active")

    def start(self, label: str, total: int | None = None) -> None:
        self.query_one(Label).update(label)
        self.query_one(ProgressBar).update(total=total, progress=0)
        self.add_class("-active")

    def advance(self, advance: int, total: int | None) -> None:
        bar = self.query_one(ProgressBar)
        if total and bar.total != total:
            bar.update(total=total)
        if advance:
            bar.advance(advance)

    def finish(self) -> None:
        self.remove_class("-active")
