"""The question input: a TextArea where Enter sends and Shift+Enter / Ctrl+J insert a newline."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

PLACEHOLDER = "Ask about the papers…  (Enter sends · Shift+Enter: new line)"
BUSY_PLACEHOLDER = "Answering…  (Esc cancels and gives the question back)"


class PromptInput(TextArea):
    """Multi-line question input. Posts `PromptInput.Submitted` on Enter."""

    DEFAULT_CSS = """
    PromptInput {
        height: auto;
        min-height: 3;
        max-height: 10;
        border: round $primary 60%;
        padding: 0 1;
    }
    PromptInput:focus { border: round $primary; }
    PromptInput.-busy { border: round $secondary 50%; }
    """

    @dataclass
    class Submitted(Message):
        """The user pressed Enter."""

        prompt: PromptInput
        text: str

        @property
        def control(self) -> PromptInput:
            return self.prompt

    def __init__(self, **kwargs) -> None:
        super().__init__(
            soft_wrap=True, show_line_numbers=False, tab_behavior="focus", placeholder=PLACEHOLDER,
            highlight_cursor_line=False, **kwargs,
        )

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in ("shift+enter", "ctrl+j", "alt+enter"):
            event.stop()
            event.prevent_default()
            if not self.read_only:
                self.insert("\n")
            return
        await super()._on_key(event)

    def set_busy(self, busy: bool) -> None:
        """While an answer streams the input stays focusable (Esc reaches the app) but read-only."""
        self.read_only = busy
        self.set_class(busy, "-busy")
        self.placeholder = BUSY_PLACEHOLDER if busy else PLACEHOLDER

    def restore(self, text: str) -> None:
        """Put a question back (after a cancel or an error), cursor at its end."""
        self.set_busy(False)
        self.load_text(text)
        self.move_cursor(self.document.end)
