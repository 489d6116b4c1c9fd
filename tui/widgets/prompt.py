"""The question input: Enter sends, Ctrl+J inserts a new line, Up/Down recall earlier questions.

It stays editable while an answer is written (sending then queues). A counter appears near the
length limit of a question, so a long paste shows at once what will be cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import Input, TextArea

from rag import MAX_QUESTION_CHARS

from ..keys import CHAT_SCROLL_KEYS, FOCUS_KEYS, NEWLINE_KEYS, SEND_KEYS

PLACEHOLDER = "Ask about the papers…  (Enter sends · Ctrl+J new line)"
BUSY_PLACEHOLDER = "Type the next question; Enter queues it · Esc stops the answer"
COUNTER_FROM = int(MAX_QUESTION_CHARS * 0.8)


def sent_length(text: str) -> int:
    """How many characters of `text` count towards the limit (whitespace runs count once, as sent)."""
    return len(" ".join(text.split()))


class InOrderKeys:
    """Runs the widget's own key bindings (Backspace, Delete, arrows...) as the key arrives.

    Textual checks a focused widget's bindings only after the key event has bubbled up to the App,
    while printable keys are inserted by the widget at once; in a burst of input (a fast paste of
    keys, a key repeat) a Backspace then lands after the characters typed behind it
    ("abcdef", 6 Backspaces, "xyz" gives "abc"). Handling them here keeps the order.
    """

    async def _run_own_binding(self, event: events.Key) -> bool:
        for binding in self._bindings.key_to_bindings.get(event.key, ()):  # type: ignore[attr-defined]
            if binding.priority:
                continue
            if await self.app.run_action(binding.action, self):  # type: ignore[attr-defined]
                event.stop()
                event.prevent_default()
                return True
        return False


class PromptInput(InOrderKeys, TextArea):
    """Multi-line question input. Posts `PromptInput.Submitted` on Enter."""

    @dataclass
    class Submitted(Message):
        """The user pressed Enter."""

        prompt: PromptInput
        text: str

        @property
        def control(self) -> PromptInput:
            return self.prompt

    @dataclass
    class ScrollChat(Message):
        """PgUp / PgDn in the input: scroll the chat (`action` is the scroll action)."""

        action: str

    def __init__(self, history: list[str] | None = None, **kwargs) -> None:
        super().__init__(
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            placeholder=PLACEHOLDER,
            highlight_cursor_line=False,
            **kwargs,
        )
        self.past_questions = history if history is not None else []
        self._focus_leaving = False  # a Tab was handled; the focus moves once the App gets to it
        self._history_index: int | None = None  # None: editing the draft
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if self._focus_leaving and not getattr(event, "rerouted", False):
            # Keys queued here behind a Tab ("Tab k" in one burst) belong to where the focus goes: the
            # App sends them on once the focus has moved (Widget.focus takes effect later).
            event.stop()
            event.prevent_default()
            again = events.Key(key, event.character)
            again.rerouted = True  # type: ignore[attr-defined]
            self.app.post_message(again)
            return
        if key in FOCUS_KEYS:
            event.stop()
            event.prevent_default()
            self._focus_leaving = True
            self.call_after_refresh(self._focus_left)
            await self.app.run_action(FOCUS_KEYS[key])
            return
        if key in SEND_KEYS:
            event.stop()
            event.prevent_default()
            row, column = self.cursor_location
            if column > 0 and self.document[row][:column].endswith("\\"):
                # "\" then Enter: a new line in terminals that cannot report Shift+Enter or Ctrl+J.
                self.replace("\n", (row, column - 1), (row, column))
            else:
                # Cleared now, not when the App handles the message: keys typed right after Enter
                # (a second question in one burst) land in the emptied input and are kept.
                text = self.text
                self.clear()
                self.post_message(self.Submitted(self, text))
            return
        if key in CHAT_SCROLL_KEYS:
            event.stop()
            event.prevent_default()
            self.post_message(self.ScrollChat(CHAT_SCROLL_KEYS[key]))
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if key == "up" and self.navigator.is_first_wrapped_line(self.cursor_location) and self._recall(-1):
            event.stop()
            event.prevent_default()
            return
        if key == "down" and self.navigator.is_last_wrapped_line(self.cursor_location) and self._recall(+1):
            event.stop()
            event.prevent_default()
            return
        if await self._run_own_binding(event):
            return
        await super()._on_key(event)

    def _focus_left(self) -> None:
        self._focus_leaving = False

    # --- history ------------------------------------------------------------------------------
    def _recall(self, step: int) -> bool:
        """Up (-1) / Down (+1) through the history; the draft is kept at the bottom."""
        if not self.past_questions:
            return False
        index = len(self.past_questions) if self._history_index is None else self._history_index
        target = index + step
        if target < 0 or target > len(self.past_questions):
            return False
        if self._history_index is None:
            self._draft = self.text
        self._history_index = None if target == len(self.past_questions) else target
        text = self._draft if self._history_index is None else self.past_questions[target]
        self.load_text(text)
        self.move_cursor(self.document.end)
        return True

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._show_counter()

    def _show_counter(self) -> None:
        length = sent_length(self.text)
        over = length > MAX_QUESTION_CHARS
        self.set_class(over, "-over")
        if over:
            self.border_subtitle = f"{length:,}/{MAX_QUESTION_CHARS:,}: only the first {MAX_QUESTION_CHARS:,} are sent"
        elif length >= COUNTER_FROM:
            self.border_subtitle = f"{length:,}/{MAX_QUESTION_CHARS:,}"
        else:
            self.border_subtitle = ""

    # --- state --------------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        """While an answer is written the input stays editable; only the hint changes."""
        self.set_class(busy, "-busy")
        self.placeholder = BUSY_PLACEHOLDER if busy else PLACEHOLDER

    def restore(self, text: str) -> None:
        """Put a question back (after a cancel or an error), cursor at its end."""
        self.load_text(text)
        self.move_cursor(self.document.end)

    def clear(self) -> None:  # type: ignore[override]
        self._history_index = None
        self._draft = ""
        super().clear()


class SearchInput(InOrderKeys, Input):
    """A one-line Input whose editing keys keep their order in a burst (see `InOrderKeys`)."""

    async def _on_key(self, event: events.Key) -> None:
        if await self._run_own_binding(event):
            return
        await super()._on_key(event)
