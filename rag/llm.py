"""Text generation behind the `Generator` protocol: llama.cpp in-process, or a client of a model
server; `make_generator` builds either from what `--model`/`RAG_MODEL` names."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .errors import GenerationError, ModelError
from .protocols import Generator, Message

if TYPE_CHECKING:
    from llama_cpp import Llama

    from .models import ModelRegistry, Progress
    from .settings import Settings

__all__ = ["Generator", "LlamaCppGenerator", "Message", "make_generator"]


class LlamaCppGenerator:
    """A GGUF model run by llama-cpp-python, loaded once, on first use."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_format: str | None = None,
        seed: int = 0,
    ):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.chat_format = chat_format
        self.seed = seed
        self._llm: Llama | None = None
        self._lock = threading.Lock()

    def load(self) -> LlamaCppGenerator:
        """Load the weights now (else the first question pays for it)."""
        self.llm  # noqa: B018 - the property loads
        return self

    @property
    def llm(self) -> Llama:
        with self._lock:
            if self._llm is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:  # pragma: no cover - the install brings it
                    raise ModelError("llama-cpp-python is not installed: pip install llama-cpp-python") from exc
                try:
                    self._llm = Llama(
                        model_path=str(self.path),
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_batch=512,
                        chat_format=self.chat_format,
                        seed=self.seed,
                        verbose=False,
                    )
                except Exception as exc:
                    raise ModelError(
                        f"cannot load model {self.path}: {str(exc)[:150]}; check the file or choose another --model"
                    ) from exc
            return self._llm

    def close(self) -> None:
        """Free the weights (they load again on next use)."""
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        try:
            chunks = cast(
                Iterator[dict[str, Any]],
                self.llm.create_chat_completion(
                    messages=cast(Any, list(messages)),
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_k=1 if temperature == 0 else 40,
                    stop=list(stop) or None,
                    stream=True,
                ),
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield str(piece)
        except (ModelError, GenerationError):
            raise
        except Exception as exc:
            raise GenerationError(f"generation failed: {type(exc).__name__}: {str(exc)[:150]}") from exc


def make_generator(
    settings: Settings,
    spec: str | None = None,
    *,
    registry: ModelRegistry | None = None,
    progress: Progress | None = None,
    load: bool = True,
) -> Generator:
    """The language model `spec` names (default: `settings.model`, else the catalogue's first entry).

    A catalogue name is assembled from its packages and verified on first use, a `.gguf` path is
    used as it is; both run in-process with llama.cpp. `openai:NAME` is a client of the server at
    `settings.base_url`. With `load`, the weights are loaded (or the server is checked to answer)
    now, so that the first question does not pay for it and a bad choice fails here.
    """
    from .models import ModelRegistry, parse_model_spec, resolve_file

    if spec is None and settings.model is None:
        registry = registry or ModelRegistry(settings)
        spec = registry.default.name
    parsed = parse_model_spec(spec if spec is not None else settings.model or "")
    if parsed.kind == "server":
        from .remote import OpenAIGenerator

        client = OpenAIGenerator.from_settings(parsed.name, settings)
        if load:
            try:
                client.check()  # a server that is down fails here, before the first question
            except Exception:
                client.close()
                raise
        return client
    if parsed.kind == "file":
        resolved = resolve_file(parsed)
    else:
        resolved = (registry or ModelRegistry(settings)).resolve(parsed, progress)
    generator = LlamaCppGenerator(
        resolved.path,
        name=resolved.name,
        n_ctx=resolved.n_ctx,
        n_threads=settings.n_threads,
        chat_format=resolved.chat_format,
    )
    return generator.load() if load else generator


def __getattr__(name: str) -> Any:
    # ScriptedGenerator moved to rag.testing (with the other test doubles); old imports keep working.
    if name == "ScriptedGenerator":
        from .testing import ScriptedGenerator

        return ScriptedGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
