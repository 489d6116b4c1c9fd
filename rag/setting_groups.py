"""The groups of `Settings` by job (models, retrieval, answer, server, store), with the checks of their
values: each group is a pydantic model whose fields keep their flat `RAG_<NAME>` variable."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from rag import resources
from rag.errors import UnknownModelError

# `openai:NAME` (as --model or RAG_EMBEDDING_MODEL) names model NAME on an OpenAI-compatible server.
REMOTE_PREFIX = "openai:"


def remote_model(spec: str | None) -> str | None:
    """NAME for `openai:NAME` (spaces around either part ignored), None for a local model. The one rule
    for the prefix: the generator's specs (`rag.backends.models.parse_model_spec`) and the embedding
    model's both go through it."""
    text = (spec or "").strip()
    if not text.startswith(REMOTE_PREFIX):
        return None
    name = text[len(REMOTE_PREFIX) :].strip()
    if not name:
        raise UnknownModelError(f"{spec!r} names no model: write {REMOTE_PREFIX}NAME, NAME as the server knows it")
    return name


def _dangling_link(path: Path) -> str | None:
    """What is wrong with `path` if it is a symbolic link that leads nowhere (None: it is not one)."""
    if not path.is_symlink() or path.exists():
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path} is a symbolic link loop"
    return f"{path} is a broken symbolic link (to {os.readlink(path)})"


def directory(value: object, name: str) -> object:
    """A data directory: not empty, and neither it nor a parent may be a file or a symbolic link that
    leads nowhere (it is created when missing)."""
    if value is None:
        return value
    if not str(value).strip():
        raise ValueError(f"empty; unset RAG_{name.upper()} for the default, or give a directory")
    path = Path(str(value)).expanduser()
    for candidate in (path, *path.parents):
        if problem := _dangling_link(candidate):
            raise ValueError(f"{problem}; fix or remove the link, or point RAG_{name.upper()} at a directory")
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"is inside {candidate}, which is a file"
                raise ValueError(f"{where}, not a directory; give a directory (it is created if missing)")
            break
    return path


def check_url(value: str) -> str:
    """`value` if it is an http[s]://host[:port][/path] URL (ValueError saying what is wrong otherwise).

    httpx would refuse such a URL only at the first request, with a traceback; urllib is enough to
    tell (importing httpx here would slow every command's start)."""
    text = value.strip()
    form = "give a URL of the form http[s]://host:port"
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # "Invalid IPv6 URL": a bracket missing
        raise ValueError(f"not a URL ({exc}; an IPv6 address needs both brackets: http://[::1]:8080); {form}") from None
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"holds spaces or control characters; {form}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http or https URL with a host; {form}")
    try:
        port = parts.port  # urllib checks the port only when asked for it
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"the port {parts.netloc.rpartition(':')[2]!r} is not a port number (1-65535); {form}")
    return text


def _url(value: object) -> object:
    if isinstance(value, str) and value.strip():  # '' means unset (the probe: never look)
        return check_url(value)
    return value


class _Group(BaseModel):
    # validate_assignment: a value set later (a CLI flag, the chat's model choice) is checked as the variable is
    model_config = ConfigDict(validate_assignment=True)


class ModelSettings(_Group):
    """The language model and the embedders: which, where they run (here or on a server), how they are reached."""

    model: str | None = Field(
        default=None,
        description="LLM: a name from models.txt, a path to a .gguf, or openai:NAME on the server at base_url "
        "(default: first entry of models.txt).",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model: the packaged all-MiniLM-L6-v2, a local sentence-transformers folder, "
        "or openai:NAME on the server at embedding_base_url.",
    )
    paper_embedding_model: str = Field(
        default="all-mpnet-base-v2",
        description="A second embedding model, of whole abstracts, fused with the chunk embedder and BM25: the "
        "packaged all-mpnet-base-v2 (int8), a local sentence-transformers folder, or '' (off: faster ingest, "
        "weaker on questions in other words than the paper's).",
    )
    n_threads: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    embed_batch_size: int = Field(default=16, ge=1)
    models_home: Path | None = Field(default=None, description="Where models are assembled (default: HOME/models).")
    models_file: Path = Field(
        default_factory=resources.models_file,
        description="The model catalogue (default: the one shipped with the program).",
    )
    # Scale-out: either model can run on an OpenAI-compatible server.
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible API root for openai:NAME models, e.g. http://127.0.0.1:8080/v1."
    )
    api_key: SecretStr | None = Field(default=None, description="Bearer token for base_url (and embedding_base_url).")
    embedding_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API root for an openai:NAME embedding model (default: base_url)."
    )
    request_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a model server may stay silent (before the first token or between two).",
    )
    request_deadline: float = Field(
        default=600.0,
        gt=0,
        description="Seconds one request to a server (model, embeddings, `rag serve`) may take from start to end, "
        "whatever the server sends meanwhile (an answer streamed slowly, one byte at a time).",
    )
    max_response_mb: float = Field(
        default=64.0,
        gt=0,
        description="The most a server's reply may hold, in MB (a larger one is an error, not read into memory).",
    )
    request_retries: int = Field(
        default=2, ge=0, description="Retries, with backoff, when a model server cannot be reached."
    )
    embedding_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Requests an openai:NAME embedding model keeps in flight on its server during ingest.",
    )

    @field_validator("models_home", mode="before")
    @classmethod
    def _is_a_directory(cls, value: object, info: ValidationInfo) -> object:
        return directory(value, info.field_name or "")

    @field_validator("base_url", "embedding_base_url", mode="before")
    @classmethod
    def _is_a_url(cls, value: object) -> object:
        return _url(value)

    @field_validator("model", "embedding_model")
    @classmethod
    def _names_a_model(cls, value: str | None) -> str | None:
        try:
            remote_model(value)  # "openai:" with no name is refused here, before any command runs
        except UnknownModelError as exc:
            raise ValueError(str(exc)) from None
        return value


class RetrievalSettings(_Group):
    """How papers are found for a question."""

    candidates: int = Field(default=40, ge=1, description="Chunks each retriever proposes before fusion.")
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    exact_search_mb: float = Field(
        default=96,
        ge=0,
        description="An index whose vectors fit in this many MB (float32) is searched exactly, not through the "
        "vector store's graph (which can miss papers far from the rest of the corpus); 0: always the graph.",
    )
    candidates_for_answer: int = Field(default=5, ge=1, description="Papers retrieved for an answer.")
    min_relevance: float = Field(default=0.25, description="Below this best cosine, refuse without calling the model.")


class AnswerSettings(_Group):
    """What the model is shown, how long it may write, and what its sentences must hold to be kept."""

    context_passages: int = Field(default=3, ge=1, le=10, description="Top papers shown to the model.")
    context_sentences: int = Field(
        default=3, ge=1, description="At most this many sentences of each of those abstracts."
    )
    context_by_meaning: bool = Field(
        default=True,
        description="Choose passage sentences by the chunk embedder's cosine to the question as well as by shared words.",
    )
    context_whole_top_tokens: int = Field(
        default=320,
        ge=0,
        description="The top paper's whole abstract is shown when it costs at most this many tokens (0: never).",
    )
    context_tokens: int = Field(
        default=450,
        ge=50,
        description="Token budget of the passages in the prompt: smaller answers sooner, and less often.",
    )
    min_support: float = Field(default=0.5, description="Share of a sentence's content words its passage must hold.")
    max_answer_tokens: int = Field(default=160, ge=16)
    temperature: float = Field(default=0.0, ge=0.0)
    prefill_while_typing: bool = Field(
        default=True,
        description="The chat retrieves for the draft question and prefills the model's prompt while you type.",
    )
    prompts_dir: Path = Field(
        default_factory=resources.prompts_dir,
        description="Prompt templates (default: the ones shipped with the program).",
    )


class ServerSettings(_Group):
    """`rag serve`, and how `rag ask` and `rag chat` find one."""

    server_token: SecretStr | None = Field(
        default=None,
        description="Bearer token `rag serve` requires on every endpoint but /health (needed off loopback).",
    )
    server_url: str | None = Field(
        default=None,
        description="A running `rag serve` that `rag ask` and `rag chat` must answer through (unreachable: an error).",
    )
    server_probe_url: str = Field(
        default="http://127.0.0.1:8765",
        description="Where `rag ask` and `rag chat` look for a running `rag serve` when server_url is unset "
        "('': never look); one serving another data dir or model is not used.",
    )
    keep_alive: float = Field(
        default=300.0,
        description="Seconds `rag serve` keeps an idle model loaded (0: unload after each answer; negative: never).",
    )

    @field_validator("server_url", "server_probe_url", mode="before")
    @classmethod
    def _is_a_url(cls, value: object) -> object:
        return _url(value)


class StoreSettings(_Group):
    """The index: how abstracts are cut into chunks, where the vectors are kept, how writers take turns."""

    chunk_tokens: int = Field(default=110, ge=32, le=254, description="Word pieces per chunk, title included.")
    chunk_overlap: int = Field(default=1, ge=0, le=3, description="Sentences shared by neighbouring chunks.")
    # Scale-out: the vectors on a Chroma server; the catalog and BM25 index stay in HOME.
    chroma_url: str | None = Field(
        default=None, description="A Chroma server (http[s]://host:port) instead of the embedded store in HOME."
    )
    chroma_headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers for the Chroma server, e.g. its auth token (JSON object)."
    )
    chroma_collection: str = Field(
        default="chunks",
        min_length=3,
        max_length=63,
        description="Chroma collection; data dirs sharing one server need different names.",
    )
    lock_timeout: float = Field(default=600, ge=0, description="Seconds an ingest waits for another one to finish.")

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _is_a_url(cls, value: object) -> object:
        return _url(value)


# The groups of `Settings` by attribute name. A setting's variable stays RAG_<NAME> whatever its group
# (RAG_CANDIDATES, not RAG_RETRIEVAL__CANDIDATES): the names users know keep working.
GROUPS: dict[str, type[_Group]] = {
    "models": ModelSettings,
    "retrieval": RetrievalSettings,
    "answer": AnswerSettings,
    "server": ServerSettings,
    "store": StoreSettings,
}
# Each setting's group: `candidates` -> "retrieval" (a name is in one group only: tests/test_settings.py).
GROUP_OF: dict[str, str] = {name: group for group, model in GROUPS.items() for name in model.model_fields}
