"""Text generation behind one small protocol: llama.cpp in-process, or a scripted stand-in for tests."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import GenerationError, ModelError

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


class LlamaCppGenerator:
    """A GGUF model run by llama-cpp-python, loaded once, on first use."""

    def __init__(self, path: Path, *, name: str | None = None, n_ctx: int = 4096, n_threads: int | None = None,
                 chat_format: str | None = None, seed: int = 0):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.seed = seed
        self._llm = None
        self._lock = threading.Lock()

    @property
    def llm(self):
        with self._lock:
            if self._llm is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:  # pragma: no cover - the install brings it
                    raise ModelError("llama-cpp-python is not installed: pip install llama-cpp-python") from exc
                try:
                    self._llm = Llama(
                        model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, n_batch=512,
                        chat_format=self.chat_format, seed=self.seed, verbose=False,
                    )
                except Exception as exc:
                    raise ModelError(f"cannot load model {self.path}: {str(exc)[:150]}; check the file or choose another --model") from exc
            return self._llm

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        try:
            chunks = self.llm.create_chat_completion(
                messages=list(messages), max_tokens=max_tokens, temperature=temperature, top_k=1 if temperature == 0 else 40,
                stop=list(stop) or None, stream=True,
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
        except (ModelError, GenerationError):
            raise
        except Exception as exc:
            raise GenerationError(f"generation failed: {type(exc).__name__}: {str(exc)[:150]}") from exc


class ScriptedGenerator:
    """A stand-in that replies from a script: for tests of the logic around the model, never instead of it."""

    def __init__(self, replies: Sequence[str] | Callable[[Sequence[Message]], str], *, name: str = "scripted",
                 n_ctx: int = 4096, delay: float = 0.0):
        self.replies = replies
        self.name = name
        self.n_ctx = n_ctx
        self.delay = delay
        self.calls: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        import time

        self.calls.append(list(messages))
        if callable(self.replies):
            reply = self.replies(messages)
        else:
            reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for piece in re.findall(r"\S+\s*", reply)[:max_tokens]:  # a word a token; the budget holds, as for a model
            if self.delay:
                time.sleep(self.delay)
            yield piece
