"""A local, private question-answering assistant over scientific paper abstracts."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .answering import AnswerStream
from .assistant import Assistant, clean_question
from .errors import (
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
    SettingsError,
    UnknownModelError,
    VectorStoreError,
)
from .index import IndexStats, IngestReport
from .prompts import CANNOT_ANSWER
from .settings import Settings
from .types import Answer, AnswerEvent, Chunk, Citation, Dropped, Hit, Paper, PrefillReport, Prepared, Timings

try:
    __version__ = _version("rag-abstracts")
except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "CANNOT_ANSWER",
    "Answer",
    "AnswerEvent",
    "AnswerStream",
    "Assistant",
    "Chunk",
    "Citation",
    "CorpusError",
    "DataDirError",
    "Dropped",
    "EmptyQuestionError",
    "GenerationError",
    "Hit",
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
    "Settings",
    "SettingsError",
    "Timings",
    "UnknownModelError",
    "VectorStoreError",
    "__version__",
    "clean_question",
]
