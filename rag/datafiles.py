"""The data dir (RAG_HOME): every file and folder in it, named in this one place (its storage problems: datadir.py).

HOME/index/                 the index (IndexFiles): catalog.sqlite, chroma/, lexical/
HOME/models/                models assembled from their packages or downloaded (unless RAG_MODELS_HOME)
HOME/ingest.lock(.json)     the writer lock and who holds it
HOME/chats/, HOME/exports/  the chat's saved conversations and its Markdown exports
HOME/chat-history.jsonl     questions sent from the chat (Up/Down in its input)
HOME/chat-settings.json     the chat's remembered model
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class IndexFiles:
    """The files of one index folder (HOME/index, or the staging folder a rebuild writes first)."""

    dir: Path

    @property
    def catalog(self) -> Path:
        return self.dir / "catalog.sqlite"

    @property
    def chroma(self) -> Path:
        return self.dir / "chroma"

    @property
    def lexical(self) -> Path:
        return self.dir / "lexical"


@dataclass(frozen=True)
class DataDir:
    home: Path

    @property
    def index(self) -> IndexFiles:
        return IndexFiles(self.home / "index")

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def ingest_lock(self) -> Path:
        return self.home / "ingest.lock"

    @property
    def ingest_lock_info(self) -> Path:
        return self.home / "ingest.lock.json"

    @property
    def chats(self) -> Path:
        return self.home / "chats"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def chat_history(self) -> Path:
        return self.home / "chat-history.jsonl"

    @property
    def chat_settings(self) -> Path:
        return self.home / "chat-settings.json"
