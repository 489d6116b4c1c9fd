"""What the chat keeps in the data dir: saved chats, the question history, the chosen model, exports.

Everything lives under `RAG_HOME`: `chats/<id>.json` (one file per chat, written atomically),
`chat-history.jsonl` (questions sent, for Up/Down in the input), `chat-settings.json` (the model
chosen with F2) and `exports/` (Markdown exports and copies that could not reach a clipboard).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from rag import Answer, DataDir

HISTORY_LIMIT = 500


def _write_atomically(target: Path, text: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    return target


class SavedChat(BaseModel):
    """One conversation as stored in HOME/chats/<id>.json."""

    id: str
    title: str = ""
    created: datetime = Field(default_factory=datetime.now)
    updated: datetime = Field(default_factory=datetime.now)
    answers: list[Answer] = Field(default_factory=list)
    # Earlier answers to a question answered again (Ctrl+R), shown dimmed above the answer that replaced
    # them: by that answer's index in `answers`, oldest first. Not part of the follow-ups' history.
    earlier: dict[int, list[Answer]] = Field(default_factory=dict)

    def matches(self, query: str) -> bool:
        """Every word of `query` occurs in the title, a question or an answer (case-insensitive)."""
        words = query.casefold().split()
        if not words:
            return True
        every = [*self.answers, *(a for earlier in self.earlier.values() for a in earlier)]
        haystack = " ".join([self.title, *(a.question for a in every), *(a.text for a in every)]).casefold()
        return all(word in haystack for word in words)


class ChatStore:
    """Chats as JSON files, one per chat."""

    def __init__(self, folder: Path):
        self.folder = folder

    def new(self, title: str) -> SavedChat:
        chat_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        return SavedChat(id=chat_id, title=" ".join(title.split())[:80])

    def path(self, chat_id: str) -> Path:
        return self.folder / f"{chat_id}.json"

    def save(self, chat: SavedChat) -> Path:
        chat.updated = datetime.now()
        return _write_atomically(self.path(chat.id), chat.model_dump_json(indent=2))

    def load(self, chat_id: str) -> SavedChat:
        return SavedChat.model_validate_json(self.path(chat_id).read_text(encoding="utf-8"))

    def list(self, query: str = "") -> list[SavedChat]:
        """Saved chats matching `query`, most recently updated first; unreadable files are skipped."""
        chats = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            try:
                chat = self.load(path.stem)
            except (OSError, ValidationError, ValueError):
                continue
            if chat.matches(query):
                chats.append(chat)
        return sorted(chats, key=lambda c: c.updated, reverse=True)

    def rename(self, chat_id: str, title: str) -> SavedChat:
        chat = self.load(chat_id)
        chat.title = " ".join(title.split())[:80]
        self.save(chat)
        return chat

    def delete(self, chat_id: str) -> None:
        self.path(chat_id).unlink(missing_ok=True)


def export_path(home: Path, name: str) -> Path:
    """HOME/exports/<name>.md, the name reduced to safe characters."""
    safe = re.sub(r"[^\w.-]+", "-", name).strip("-.") or "chat"
    return DataDir(home).exports / f"{safe}.md"


def write_export(home: Path, name: str, text: str) -> Path:
    return _write_atomically(export_path(home, name), text if text.endswith("\n") else text + "\n")


class PromptHistory:
    """The questions sent, oldest first, shared by every chat and kept across restarts (JSON lines)."""

    def __init__(self, path: Path):
        self.path = path
        self.items: list[str] = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines[-HISTORY_LIMIT:]:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, str) and item.strip():
                self.items.append(item)

    def add(self, text: str) -> None:
        text = text.strip()
        if not text or (self.items and self.items[-1] == text):
            return
        self.items.append(text)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(text) + "\n")
        except OSError:
            pass  # the history is a convenience: a read-only data dir keeps it for this session only


class ChatSettings(BaseModel):
    """The chat's own remembered choices (HOME/chat-settings.json)."""

    model: str | None = None

    @classmethod
    def load(cls, path: Path) -> ChatSettings:
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValidationError, ValueError):
            return cls()

    def save(self, path: Path) -> None:
        _write_atomically(path, self.model_dump_json(indent=2))
