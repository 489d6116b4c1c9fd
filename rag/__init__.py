"""A local, private question-answering assistant over scientific paper abstracts."""

from .answering import AnswerStream
from .assistant import Assistant, clean_question
from .prompts import CANNOT_ANSWER
from .errors import (
    CorpusError,
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
from .settings import Settings
from .types import Answer, Chunk, Citation, Hit, Paper, Timings

__all__ = [
    "CANNOT_ANSWER",
    "Answer",
    "AnswerStream",
    "Assistant",
    "Chunk",
    "Citation",
    "CorpusError",
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
    "PromptError",
    "RagError",
    "Settings",
    "SettingsError",
    "Timings",
    "UnknownModelError",
    "VectorStoreError",
    "clean_question",
]
