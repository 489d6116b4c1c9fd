"""A local, private question-answering assistant over scientific paper abstracts.

The public names are imported when first used (PEP 562): `rag ask` through a running `rag serve`
needs the errors, the settings and the answer types, not the index, the models and their libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rag.errors import (
    Cancelled,
    CorpusError,
    DataDirError,
    EmptyQuestionError,
    GenerationError,
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    InputError,
    ModelError,
    ModelVerificationError,
    OfflineError,
    PromptError,
    RagError,
    ServerError,
    SettingsError,
    UnknownModelError,
    VectorStoreError,
)

if TYPE_CHECKING:
    from rag.answer.answering import AnswerStream
    from rag.answer.prompts import CANNOT_ANSWER
    from rag.answer.questions import MAX_QUESTION_CHARS, clean_question
    from rag.assistant import Assistant
    from rag.busy import Holding
    from rag.corpus.readers import BUNDLED_PREFIX
    from rag.datafiles import DataDir
    from rag.ingest.pipeline import IngestReport
    from rag.safety import terminal_safe
    from rag.serve.client import ServerClient
    from rag.settings import BUNDLED_CORPUS, Settings
    from rag.store.filters import Filters
    from rag.store.index import IndexStats
    from rag.text import split_sentences
    from rag.types import (
        Answer,
        AnswerEvent,
        Chunk,
        Citation,
        Dropped,
        Hit,
        Paper,
        PrefillReport,
        Prepared,
        Timings,
        author_names,
        normalise_text,
    )

_TYPES = (
    "Answer",
    "AnswerEvent",
    "Chunk",
    "Citation",
    "Dropped",
    "Hit",
    "Paper",
    "PrefillReport",
    "Prepared",
    "Timings",
)
_HOME = {  # public name -> the module that defines it
    "AnswerStream": "answer.answering",
    "Assistant": "assistant",
    "IndexStats": "store.index",
    "IngestReport": "ingest.pipeline",
    "CANNOT_ANSWER": "answer.prompts",
    "clean_question": "answer.questions",
    "Settings": "settings",
    "Filters": "store.filters",
    "Holding": "busy",
    "DataDir": "datafiles",
    # what the chat (tui/) needs beyond the assistant: it imports nothing else of the package
    "ServerClient": "serve.client",
    "MAX_QUESTION_CHARS": "answer.questions",
    "split_sentences": "text",
    "BUNDLED_PREFIX": "corpus.readers",
    "BUNDLED_CORPUS": "settings",
    "terminal_safe": "safety",
    "normalise_text": "types",
    "author_names": "types",
    **dict.fromkeys(_TYPES, "types"),
}


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rag-abstracts")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BUNDLED_CORPUS",
    "BUNDLED_PREFIX",
    "CANNOT_ANSWER",
    "MAX_QUESTION_CHARS",
    "Answer",
    "AnswerEvent",
    "AnswerStream",
    "Assistant",
    "Cancelled",
    "Chunk",
    "Citation",
    "CorpusError",
    "DataDir",
    "DataDirError",
    "Dropped",
    "EmptyQuestionError",
    "Filters",
    "GenerationError",
    "Hit",
    "Holding",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexMissingError",
    "IndexStats",
    "IngestReport",
    "InputError",
    "ModelError",
    "ModelVerificationError",
    "OfflineError",
    "Paper",
    "PrefillReport",
    "Prepared",
    "PromptError",
    "RagError",
    "ServerClient",
    "ServerError",
    "Settings",
    "SettingsError",
    "Timings",
    "UnknownModelError",
    "VectorStoreError",
    "__version__",
    "author_names",
    "clean_question",
    "normalise_text",
    "split_sentences",
    "terminal_safe",
]
