"""The two model interfaces the assistant is written against; any object with these members fits.

`Generator`: llama.cpp in-process (`rag.backends.llm.LlamaCppGenerator`), a model server
(`rag.backends.remote.OpenAIGenerator`), or a script (`rag.testing.ScriptedGenerator`).
`Embedder`: all-MiniLM-L6-v2 on onnxruntime or torch (`rag.backends.embeddings.Embedder`), an embedding
server (`rag.backends.remote_embeddings.OpenAIEmbedder`), or feature hashing (`rag.testing.HashEmbedder`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from rag.types import PrefillReport

Message = dict[str, str]


@runtime_checkable
class Generator(Protocol):
    """What the assistant needs from a language model."""

    name: str
    n_ctx: int

    def count_tokens(self, text: str) -> int: ...

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        """Yield the reply in pieces as it is generated."""
        ...


@runtime_checkable
class Prefiller(Protocol):
    """A generator that can evaluate a prompt's prefix ahead of the question (llama.cpp in-process);
    others (a model server) simply lack `prefill`, and `Assistant.prepare` then only retrieves."""

    def prefill(
        self, messages: Sequence[Message], *, upto: str, cancel: threading.Event | None = None
    ) -> PrefillReport:
        """Evaluate the prompt of `messages` up to the text `upto`; stop between steps when `cancel` is set."""
        ...


class Embedder(Protocol):
    """What the index and the retriever need from an embedding model: unit vectors (cosine = dot product).

    (Not runtime-checkable on purpose: `isinstance` would read `dimension`, which loads the model.)
    """

    @property
    def name(self) -> str:
        """Recorded in the index: an index is only searched with the model that built it."""
        ...

    @property
    def dimension(self) -> int: ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text as the chunker counts them (the model's window limit)."""
        ...

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """One unit vector per text, in order; `progress(n)` after each batch of n texts."""
        ...

    def encode_query(self, text: str) -> np.ndarray: ...
