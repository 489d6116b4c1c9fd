"""Errors the library raises. Each message is one line that says what to do."""

from __future__ import annotations


class RagError(Exception):
    """Base class for every error the assistant raises on purpose."""


class Cancelled(RagError):
    """The caller stopped a call (while it waited for the assistant, or from a progress callback)."""


class InputError(RagError):
    """A question, path or option the user gave cannot be used."""


class SettingsError(InputError):
    """A setting (a `RAG_*` variable or an option) has a value that cannot be used."""


class EmptyQuestionError(InputError):
    """The question is empty or whitespace."""


class CorpusError(RagError):
    """A corpus file cannot be read, or nothing in it could be ingested."""


class IndexMissingError(RagError):
    """There is no index yet (run `rag ingest`)."""


class IndexCorruptError(RagError):
    """The index on disk is damaged or inconsistent (run `rag ingest --rebuild`)."""


class IndexMismatchError(IndexCorruptError):
    """The index was built with another embedding model than the one configured."""


class DataDirError(RagError):
    """The data dir cannot be written (read-only, no space left): nothing in it is damaged."""


class VectorStoreError(RagError):
    """The Chroma server cannot be reached or refused a request (nothing committed is lost)."""


class ModelError(RagError):
    """A model could not be found, assembled, verified or loaded."""


class UnknownModelError(ModelError):
    """The model name is not in the catalogue and is not a path to a GGUF file."""


class ModelVerificationError(ModelError):
    """A model file does not have the size or sha256 the catalogue expects."""


class OfflineError(ModelError):
    """A download was needed but the network is unreachable."""


class PromptError(RagError):
    """A prompt template is missing or uses unknown/missing variables."""


class GenerationError(RagError):
    """The language model failed while generating."""


class IndexBusyError(RagError):
    """Another process is writing to the index and did not finish in time."""


class ServerError(RagError):
    """The `rag serve` this command was told to use cannot be reached, refused the request, or serves something else."""
