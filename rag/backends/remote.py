"""Streamed chat completions of an OpenAI-compatible server (llama.cpp's `llama-server`,
`python -m llama_cpp.server`, vLLM, Ollama, ...) as a `Generator`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import httpx

from rag import deadlines
from rag.backends.openai_server import (
    DEADLINE_S,
    MAX_RESPONSE_BYTES,
    Deadline,
    OpenAIServer,
    StreamTimeout,
    estimate_tokens,
    one_line,
    until,
)
from rag.backends.sse import TooLarge, iter_lines, iter_sse_data
from rag.deadlines import ResponseTooLarge, ResponseTooSlow
from rag.errors import GenerationError, ModelError
from rag.protocols import Message
from rag.setting_groups import REMOTE_PREFIX
from rag.settings import Settings

# The OpenAI API does not report a model's context length; the prompts here need well under 1k tokens.
REMOTE_N_CTX = 4096


# Stops a server that streams past the token budget with huge pieces: no token is this long.
MAX_CHARS_PER_TOKEN = 64


class OpenAIGenerator:
    """A chat model on an OpenAI-compatible server, streamed (`--model openai:NAME --base-url URL`)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        deadline: float = DEADLINE_S,
        max_bytes: int = MAX_RESPONSE_BYTES,
        retries: int = 2,
        n_ctx: int = REMOTE_N_CTX,
    ):
        self.model = model
        self.name = REMOTE_PREFIX + model
        self.n_ctx = n_ctx
        self.server = OpenAIServer(
            base_url,
            api_key=api_key,
            timeout=timeout,
            deadline=deadline,
            max_bytes=max_bytes,
            retries=retries,
            what="model",
            setting="RAG_BASE_URL",
        )
        self._count: Callable[[str], int] | None = None
        self._sampling: dict[str, float] = {}  # server-specific fields, found by the same probe
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> OpenAIGenerator:
        if not settings.models.base_url:
            raise ModelError(
                f"model {REMOTE_PREFIX}{model} needs the server's URL: set RAG_BASE_URL or pass --base-url"
            )
        return cls(model, settings.models.base_url, **OpenAIServer.options(settings))

    def check(self) -> None:
        """Fail now, with one line, if the server is down or is not an OpenAI-compatible one."""
        response = self.server.send("GET", "models", error=ModelError)
        try:
            listing = deadlines.loads(response.content)
        except ValueError as exc:
            raise self.server.garbage("/models returned no JSON", ModelError) from exc
        if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
            raise self.server.garbage("/models has no model list", ModelError)

    # --- token counts --------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Exact where the server can tokenize, else an estimate; only used to budget the prompt.

        Exact: llama-cpp-python's server (/extras/tokenize/count) and llama.cpp's llama-server
        (/tokenize), probed once. Elsewhere (vLLM, Ollama, hosted APIs: no tokenizer endpoint in the
        OpenAI API) characters / 4, which is close for English text in BPE vocabularies.
        """
        return self._probe()(text)

    def _probe(self) -> Callable[[str], int]:
        """Find out once what the server is: its token counter, and the sampling fields it needs."""
        with self._lock:
            if self._count is None:
                self._count = self._pick_counter()
            return self._count

    def _pick_counter(self) -> Callable[[str], int]:
        server_root = self.server.root.removesuffix("/v1")
        candidates: list[tuple[str, Callable[[str], dict], Callable[[dict], int]]] = [
            (
                server_root + "/extras/tokenize/count",
                lambda t: {"model": self.model, "input": t},
                lambda body: int(body["count"]),
            ),
            (
                server_root + "/tokenize",
                lambda t: {"content": t, "add_special": False},
                lambda body: len(body["tokens"]),
            ),
        ]
        for url, request, read in candidates:
            response = self.server.send("POST", url, request("probe text"), error=GenerationError, accept_errors=True)
            try:
                response.raise_for_status()
                read(deadlines.loads(response.content))
            except (httpx.HTTPStatusError, ValueError, KeyError, TypeError):
                continue  # this server has no such endpoint
            if url.endswith("/extras/tokenize/count"):
                # llama-cpp-python's server applies repeat_penalty 1.1 unless a request says otherwise;
                # in-process llama.cpp (and llama-server, vLLM) use none. With it, greedy answers differ
                # from the same model in-process, and the model shies away from repeating the passages'
                # numbers and names, which the citation checks require.
                self._sampling = {"repeat_penalty": 1.0}

            def count(text: str, url: str = url, request=request, read=read) -> int:
                response = self.server.send("POST", url, request(text), error=GenerationError)
                try:
                    return read(deadlines.loads(response.content))
                except (ValueError, KeyError, TypeError):
                    return estimate_tokens(text)

            return count
        return estimate_tokens

    # --- generation ----------------------------------------------------------------------------------
    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        # temperature 0 is greedy decoding on llama.cpp, vLLM and Ollama alike; server-specific
        # sampling fields go only to the server known to take them (strict servers reject unknown ones).
        payload: dict = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if stop:
            payload["stop"] = list(stop)[:4]  # the OpenAI API takes at most 4
        self._probe()
        payload.update(self._sampling)
        server = self.server
        # The silence allowed before the first token (prefill) and between two tokens: whatever else
        # the server sends meanwhile (keep-alive comments, empty deltas) does not count.
        deadline = Deadline(server.timeout)
        response = server.send("POST", "chat/completions", payload, stream=True, error=GenerationError)
        try:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                raise server.garbage(
                    f"a reply of type {content_type or 'unknown'!r}, not an event stream", GenerationError
                )
            finished = False
            tokens = chars = 0
            for data in iter_sse_data(iter_lines(until(response.iter_bytes(), deadline))):
                if data.strip() == "[DONE]":
                    finished = True
                    break
                piece, finish_reason = self._parse_event(data)
                finished = finished or finish_reason is not None
                if piece:
                    deadline.reset()
                    tokens, chars = tokens + 1, chars + len(piece)
                    yield piece
                    if tokens >= max_tokens or chars >= max_tokens * MAX_CHARS_PER_TOKEN:
                        finished = True  # the budget is ours to keep: a server may stream past max_tokens
                        break
                elif deadline.expired:
                    raise StreamTimeout()
            if not finished:
                raise GenerationError(
                    f"the model server at {server.root} ended the answer early (no finish reason, no [DONE]); "
                    "check that the server is still running and try again"
                )
        except StreamTimeout as exc:
            raise server.timed_out(GenerationError, "no token") from exc
        except ResponseTooSlow as exc:
            raise server.too_slow(GenerationError) from exc
        except ResponseTooLarge as exc:
            raise server.too_large(GenerationError) from exc
        except httpx.TimeoutException as exc:
            raise server.timed_out(GenerationError) from exc
        except httpx.TransportError as exc:
            raise server.broken(exc, GenerationError) from exc
        except TooLarge as exc:
            raise server.garbage(str(exc), GenerationError) from exc
        finally:
            response.close()  # also when the caller stops early: the server then stops generating

    def _parse_event(self, data: str) -> tuple[str | None, str | None]:
        """(text, finish reason) of one chat-completion chunk."""
        try:
            event = deadlines.loads(data)
        except ValueError:
            raise self.server.garbage(f"an event that is not JSON: {one_line(data, 60)!r}", GenerationError) from None
        if not isinstance(event, dict):
            raise self.server.garbage(f"an event that is not an object: {one_line(data, 60)!r}", GenerationError)
        if event.get("error"):
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise GenerationError(f"the model server at {self.server.root} failed mid-answer: {one_line(str(message))}")
        choices = event.get("choices")
        if not isinstance(choices, list):
            raise self.server.garbage(f"an event without choices: {one_line(data, 60)!r}", GenerationError)
        if not choices:
            return None, None  # e.g. a final usage-only chunk
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise self.server.garbage(f"content that is not text: {one_line(data, 60)!r}", GenerationError)
        return content, choice.get("finish_reason")

    def close(self) -> None:
        self.server.close()
