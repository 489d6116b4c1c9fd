"""The chat in a real terminal: tmux runs it, keys go in as a terminal sends them (bytes), the test
reads the screen back. Skipped where tmux is not installed (`apt-get install tmux`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import Assistant, Settings
from rag.testing import HashEmbedder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

DATA = Path(__file__).parent / "data"
CHAT = Path(__file__).parent / "tmux_chat.py"
QUESTION = "How much does the logical error rate fall?"


class Tmux:
    """One private tmux server (its own socket, no user configuration) with one window."""

    def __init__(self, tmp: Path, width: int, height: int, command: list[str], env: dict[str, str]):
        self.socket = str(tmp / "tmux.sock")
        self.env = {**os.environ, **env}
        self.env.pop("TMUX", None)
        self.run(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            str(width),
            "-y",
            str(height),
            " ".join(f"'{part}'" for part in command),
        )

    def run(self, *args: str, input: bytes | None = None) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args], input=input, capture_output=True, env=self.env, timeout=20
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def keys(self, *keys: str) -> None:
        """tmux key names (Enter, C-j, F1, BTab), sent as the terminal would encode them."""
        self.run("send-keys", "-t", "chat", *keys)

    def text(self, text: str) -> None:
        self.run("send-keys", "-t", "chat", "-l", text)

    def raw(self, data: bytes) -> None:
        """Bytes as they would come from the terminal (e.g. an xterm or kitty Shift+Enter)."""
        self.run("send-keys", "-t", "chat", "-H", *(f"{b:02x}" for b in data))

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "chat")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen:\n{self.screen()}")

    def wait_for_input(self, prefix: str, timeout: float = 10.0) -> None:
        """Until the input's first line starts with `prefix` (a notice may cover the input's right side)."""
        deadline = time.monotonic() + timeout
        while not self.input_lines()[0].startswith(prefix):
            assert time.monotonic() < deadline, f"the input does not start with {prefix!r}:\n{self.screen()}"
            time.sleep(0.1)

    def input_lines(self) -> list[str]:
        """The lines of the question input (the rounded box above the status line)."""
        lines = self.screen().rstrip("\n").split("\n")
        bottom = max(i for i, line in enumerate(lines) if line.startswith("╰"))
        top = max(i for i, line in enumerate(lines[:bottom]) if line.startswith("╭"))
        return [line[1:].split("│")[0].strip() for line in lines[top + 1 : bottom]]

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


def start_chat(tmp_path: Path, rag_home: Path, width: int, height: int, *chat_args: str) -> Tmux:
    """The small corpus indexed with hash embeddings, then `tests/tmux_chat.py` (its DELAY and
    STUCK_MARKER are `chat_args`) running in tmux at this size."""
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    a.ingest([DATA / "small.jsonl"])
    a.close()
    return Tmux(
        tmp_path,
        width,
        height,
        [sys.executable, str(CHAT), str(rag_home), *chat_args],
        {"PYTHONPATH": str(Path(__file__).parent.parent), "TERM": "xterm-256color"},
    )


@pytest.fixture
def chat_in_tmux(tmp_path, rag_home):
    tmux = start_chat(tmp_path, rag_home, 140, 40, "0.02")
    try:
        tmux.wait_for("5 papers")
        yield tmux
    finally:
        tmux.close()


def test_keys_as_a_terminal_sends_them(chat_in_tmux, rag_home):
    tmux = chat_in_tmux
    # New lines: Ctrl+J (a line feed), xterm's Shift+Enter (modifyOtherKeys) and kitty's; Enter sends.
    tmux.text("How much")
    tmux.keys("C-j")
    tmux.text("does the")
    tmux.raw(b"\x1b[27;2;13~")
    tmux.text("logical error")
    tmux.raw(b"\x1b[13;2u")
    tmux.text("rate fall?")
    time.sleep(0.5)
    assert tmux.input_lines()[:4] == ["How much", "does the", "logical error", "rate fall?"]
    tmux.keys("Enter")
    screen = tmux.wait_for("small.jsonl:1")  # the sources panel is filled last
    assert QUESTION in screen and "factor of 2.1" in screen and "small.jsonl:1" in screen, screen

    # A fast burst of keys keeps its order ("abcdef", 6 Backspaces, "xyz").
    tmux.raw(b"abcdef" + b"\x7f" * 6 + b"xyz")
    time.sleep(0.5)
    assert tmux.input_lines()[0] == "xyz"
    tmux.keys("C-u")

    # Function keys reach the app while the input has the focus.
    tmux.keys("F1")
    tmux.wait_for("Esc, Ctrl+C")
    tmux.keys("Escape")
    time.sleep(0.8)
    tmux.keys("F4")
    tmux.wait_for("Passages shown to the model")
    tmux.keys("Escape")
    time.sleep(0.8)

    # Keys typed right after the Esc that closes a dialog reach the input (they were lost, and the dialog
    # stayed open: Esc then a key within 100 ms is what a terminal sends for Alt+key).
    for dialog, shown in (("F1", "Esc, Ctrl+C"), ("C-o", "Saved chats"), ("C-l", "Log")):
        tmux.keys(dialog)
        tmux.wait_for(shown)
        tmux.keys("Escape")
        tmux.text("hi")
        time.sleep(0.8)
        assert tmux.input_lines()[0] == "hi" and shown not in tmux.screen(), dialog
        tmux.keys("C-u")

    # F3 inside tmux: tmux's paste buffer (tmux confirms it) and the file.
    tmux.keys("F3")
    tmux.wait_for("saved to")
    assert "factor of 2.1" in tmux.run("show-buffer")
    [export] = (rag_home / "exports").glob("*.md")
    assert "factor of 2.1" in export.read_text()

    # A small terminal: the sources panel goes, F8 brings it back instead of the chat.
    tmux.run("resize-window", "-t", "chat", "-x", "60", "-y", "20")
    time.sleep(1.0)
    screen = tmux.screen()
    assert "Sources (" not in screen and "Ask about the papers" in screen
    tmux.keys("F8")
    screen = tmux.wait_for("Sources (1)")
    assert "Ask about the papers" not in screen


def test_quitting_during_a_prefill_does_not_wait_for_it(tmp_path, rag_home):
    # Issue 26, item 7: Ctrl+Q while answering took 2-11 s (Textual's thread pool waited for the
    # model call). The scripted model here sleeps 20 s before its first token, then writes a file:
    # the chat must be gone before that file exists.
    marker = tmp_path / "stuck-call-ended"
    tmux = start_chat(tmp_path, rag_home, 120, 35, "0", str(marker))
    try:
        tmux.run("set-option", "-t", "chat", "remain-on-exit", "on")
        tmux.wait_for("5 papers")
        tmux.text(QUESTION)
        tmux.keys("Enter")
        tmux.wait_for("reading the passages")
        tmux.keys("C-q")
        deadline = time.monotonic() + 60
        while tmux.run("display-message", "-p", "-t", "chat", "#{pane_dead}").strip() != "1":
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.1)
        assert not marker.exists(), "the chat waited for the model call to end"
    finally:
        tmux.close()


EXPERTS_QUESTION = "How many experts does the sparse mixture-of-experts language model use?"


def test_a_queued_question_and_a_smaller_window(tmp_path, rag_home):
    # Issue 26: a second question queued behind the first; what the panels show follows the answer in
    # view; shrinking to 80x24 with the sources shown keeps the chat and the input; typing on an
    # answer goes to the input.
    tmux = start_chat(tmp_path, rag_home, 120, 35, "0.05")
    try:
        tmux.wait_for("5 papers")
        tmux.text(QUESTION)
        tmux.keys("Enter")
        tmux.text(EXPERTS_QUESTION)
        tmux.keys("Enter")
        tmux.wait_for("queued")
        screen = tmux.wait_for("64 experts")
        screen = tmux.wait_for("Sources (1)")
        assert "Sparse Mixture-of-Experts" in screen and "wall" in screen, screen
        tmux.keys("F4")
        screen = tmux.wait_for("Passages shown to the model")
        assert "How many experts" in screen, screen
        tmux.keys("Escape")
        time.sleep(0.8)

        tmux.keys("F8")
        tmux.keys("F8")  # hidden, then shown beside the chat again
        tmux.wait_for("Sources (1)")
        tmux.run("resize-window", "-t", "chat", "-x", "80", "-y", "24")
        time.sleep(1.0)
        screen = tmux.screen()
        assert "Sources (1)" not in screen and "Ask about the papers" in screen, screen
        tmux.text("abc")
        time.sleep(0.5)
        assert tmux.input_lines()[0] == "abc"
        tmux.keys("Tab", "k")  # the latest answer, then the one before; a letter typed there goes to the input
        time.sleep(0.3)
        tmux.text("d")
        time.sleep(0.5)
        assert tmux.input_lines()[0] == "abcd"
        screen = tmux.screen()
        assert "f4 Why?" in screen and "f8 Sources" in screen and "f1 Keys" in screen, screen
    finally:
        tmux.close()


@pytest.mark.parametrize("size", [(120, 35), (80, 24)], ids=["120x35", "80x24"])
def test_every_documented_key_works(tmp_path, rag_home, size):
    # Issue 26: every key of the help (F1) works in a real terminal at 120x35 and at 80x24, with the
    # input focused as a user has it. Each key is checked by what it shows or does.
    tmux = start_chat(tmp_path, rag_home, *size, "0.02")
    try:
        tmux.wait_for("5 papers")
        tmux.text(QUESTION)
        tmux.keys("Enter")  # Enter sends
        tmux.wait_for("factor of 2.1")
        tmux.wait_for("ready")

        def dialog(key: str, shown: str) -> None:
            tmux.keys(key)
            tmux.wait_for(shown)
            tmux.keys("Escape")
            deadline = time.monotonic() + 10
            while shown in tmux.screen() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert shown not in tmux.screen(), (key, tmux.screen())

        dialog("F1", "Esc, Ctrl+C")  # keys
        dialog("F4", "Passages shown to the model")  # why?
        dialog("F2", "Switch model")
        dialog("C-o", "Saved chats")
        dialog("C-l", "Log")
        dialog("C-p", "Search for commands")  # the command palette

        tmux.keys("F3")  # copy: tmux's paste buffer and a file (the notice wraps at 80 columns)
        tmux.wait_for("Sent to the terminal clipboard")
        assert "factor of 2.1" in tmux.run("show-buffer")

        tmux.keys("Up")  # the earlier question, in the input
        tmux.wait_for_input("How much does")
        tmux.keys("C-u")

        tmux.keys("C-r")  # answer again: both kept
        tmux.wait_for("earlier answer")

        # On an answer: Tab goes there, ? shows the keys, e puts its question in the input to edit.
        tmux.keys("Tab")
        time.sleep(0.5)
        tmux.text("?")
        tmux.wait_for("Esc, Ctrl+C")
        tmux.keys("Escape")
        time.sleep(0.8)  # closing the help gives the focus back to the answer
        tmux.keys("k", "g", "G")  # the answer before, the first, the latest: focus stays on the answers
        tmux.text("e")
        tmux.wait_for_input("How much does")
        tmux.keys("Escape", "C-u")

        tmux.keys("PPage", "NPage")  # PgUp/PgDn scroll the chat from the input, which keeps what is typed
        tmux.text("kept")
        tmux.wait_for_input("kept")
        assert tmux.input_lines()[0].split("▌")[0].strip() == "kept", tmux.screen()  # a notice may overlap it
        tmux.keys("C-u")

        tmux.keys("F8")  # sources shown or hidden (at 80 columns: instead of the chat)
        time.sleep(1.0)
        toggled = tmux.screen()
        tmux.keys("F8")
        time.sleep(1.0)
        assert toggled != tmux.screen()

        tmux.keys("C-n")  # a new chat
        deadline = time.monotonic() + 10
        while "factor of 2.1" in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "factor of 2.1" not in tmux.screen()

        tmux.run("set-option", "-t", "chat", "remain-on-exit", "on")
        tmux.keys("C-q")  # quit
        deadline = time.monotonic() + 15
        while tmux.run("display-message", "-p", "-t", "chat", "#{pane_dead}").strip() != "1":
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.1)
    finally:
        tmux.close()
