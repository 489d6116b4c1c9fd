"""Copying text out of a terminal app, saying what really happened.

A terminal app cannot read the clipboard back, so OSC 52 (Textual's `copy_to_clipboard`) is sent
but never claimed as done: tmux drops it by default (`set-clipboard external`), Terminal.app
ignores it. Inside tmux the text also goes into a tmux paste buffer (`tmux load-buffer -w`, which
tmux confirms). And it is always written to a file, the fallback that works everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from textual.app import App

from .store import write_export


@dataclass
class Copied:
    file: Path | None
    tmux: bool
    error: str | None = None

    def message(self) -> str:
        where = []
        if self.tmux:
            where.append("in tmux's paste buffer (prefix + ] pastes it)")
        if self.file is not None:
            where.append(f"saved to {self.file}")
        sent = "Sent to the terminal clipboard (OSC 52; whether the terminal took it cannot be checked)"
        if os.environ.get("TMUX") and not self.tmux:
            sent = "Sent as OSC 52, which tmux drops unless `set -g set-clipboard on`"
        text = sent + ("; " + "; ".join(where) if where else "") + "."
        if self.error:
            text += f" {self.error}"
        return text


def tmux_buffer(text: str) -> bool:
    """Put `text` in tmux's paste buffer (and, with -w, the outer terminal's clipboard) when inside tmux."""
    if not os.environ.get("TMUX") or shutil.which("tmux") is None:
        return False
    try:
        done = subprocess.run(
            ["tmux", "load-buffer", "-w", "-"],
            input=text.encode("utf-8"),
            timeout=3,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def copy_out(app: App, text: str, home: Path, name: str) -> Copied:
    """OSC 52, tmux's buffer where there is one, and HOME/exports/<name>.md in any case."""
    quiet = getattr(app, "copy_quietly", None)  # the chat's: OSC 52 and tmux, without a notification
    if callable(quiet):
        in_tmux = bool(quiet(text))
    else:
        app.copy_to_clipboard(text)
        in_tmux = tmux_buffer(text)
    try:
        return Copied(write_export(home, name, text), in_tmux)
    except OSError as exc:
        return Copied(None, in_tmux, f"Could not write {home / 'exports'}: {exc.strerror or exc}.")
