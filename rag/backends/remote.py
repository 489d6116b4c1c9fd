"""Clients for OpenAI-compatible servers (llama.cpp's `llama-server`, `python -m llama_cpp.server`,
vLLM, Ollama, ...): streamed chat completions as a `Generator`, and `/embeddings` as an embedder.

Plain httpx (already installed with chromadb, declared in pyproject) rather than the `openai` SDK:
two endpoints are needed, and the retry rule here (reconnect only before the first token, never
re-send a request whose answer has started to stream) is not the SDK's.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from rag import deadlines
from rag.backends.sse import TooLarge, iter_lines, iter_sse_data
from rag.datafiles import IndexFiles
from rag.deadlines import MB, Budget, ResponseTooLarge, ResponseTooSlow
from rag.errors import GenerationError, ModelError, RagError
from rag.protocols import Message
from rag.settings import REMOTE_PREFIX, Settings

CONNECT_TIMEOUT_S = 5.0
FIRST_BACKOFF_S = 0.5
# 502/503: a proxy whose backend is restarting, a server still loading its model: worth a retry.
RETRY_STATUS = frozenset({502, 503})
# A request that may be sent twice (embeddings: the same input gives the same vectors) is also
# retried after these answers (overloaded, rate-limited, a crashed worker) and after a timeout or a
# connection cut mid-reply.
IDEMPOTENT_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# The OpenAI API does not report a model's context length; the prompts here need well under 1k tokens.
REMOTE_N_CTX = 4096
CHARS_PER_TOKEN = 4  # English text in BPE vocabularies: ~4 characters a token (the fallback count)
# Stops a server that streams past the token budget with huge pieces: no token is this long.
MAX_CHARS_PER_TOKEN = 64
DEADLINE_S = 600.0  # one request, start to end (RAG_REQUEST_DEADLINE)
MAX_RESPONSE_BYTES = 64 * MB  # one reply (RAG_MAX_RESPONSE_MB)


def api_root(url: str) -> str:
    """The API root: `http://host:port` becomes `http://host:port/v1` (all these servers serve /v1)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # "Invalid IPv6 URL"
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"the server URL {url!r} is not of the form http[s]://host:port[/v1]")
    root = url.strip().rstrip("/")
    return root if parts.path.strip("/") else root + "/v1"


class Deadline:
    """A point in time `seconds` from the last `reset()`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.reset()

    def reset(self) -> None:
        self.at = time.monotonic() + self.seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.at


class StreamTimeout(Exception):
    """No token arrived before the deadline (the server may still be sending keep-alive bytes)."""


def until(chunks: Iterable[bytes], deadline: Deadline) -> Iterator[bytes]:
    """The chunks of a byte stream, checking `deadline` at every one.

    httpx's read timeout only bounds the wait for the next bytes: a server that keeps sending
    something (SSE keep-alive comments, one byte at a time) never trips it. The deadline does.
    """
    for chunk in chunks:
        if deadline.expired:
            raise StreamTimeout()
        yield chunk


def _one_line(text: str, limit: int = 150) -> str:
    return " ".join(text.split())[:limit]


def _server_message(response: httpx.Response) -> str:
    """The error text of an error response: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the body."""
    try:
        body = deadlines.loads(response.content)
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return _one_line(str(error))
    return _one_line(response.text)


class OpenAIServer:
    """One OpenAI-compatible server: its API root, auth, timeouts and the retry rule.

    `what` ("model", "embedding") and `setting` (the env variable holding the URL) only shape the
    error messages, which say what to do.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        deadline: float = DEADLINE_S,
        max_bytes: int = MAX_RESPONSE_BYTES,
        retries: int = 2,
        what: str = "model",
        setting: str = "RAG_BASE_URL",
    ):
        self.root = api_root(base_url)
        self.timeout = timeout
        self.budget = Budget(deadline, max_bytes)
        self.retries = retries
        self.what = what
        self.setting = setting
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # read timeout = the longest silence allowed: before the first token (prefill) or between two tokens;
        # the budget bounds each request as a whole (a server that trickles bytes never trips the timeout).
        self.http = deadlines.Client(
            self.budget,
            base_url=self.root + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
        )

    @classmethod
    def options(cls, settings: Settings) -> dict:
        """The keyword arguments of the settings: key, timeouts, budget, retries."""
        return {
            "api_key": settings.api_key.get_secret_value() if settings.api_key else None,
            "timeout": settings.request_timeout,
            "deadline": settings.request_deadline,
            "max_bytes": int(settings.max_response_mb * MB),
            "retries": settings.request_retries,
        }

    # --- messages ----------------------------------------------------------------------------------
    def unreachable(self, exc: Exception, error: type[RagError]) -> RagError:
        return error(
            f"cannot reach the {self.what} server at {self.root} ({type(exc).__name__}, {self.retries + 1} attempts); "
            f"start it (see README, Scaling out) or check {self.setting}"
        )

    def timed_out(self, error: type[RagError], what: str = "nothing") -> RagError:
        return error(
            f"the {self.what} server at {self.root} sent {what} for {self.timeout:g} s; it may be overloaded: "
            "try again, or raise RAG_REQUEST_TIMEOUT"
        )

    def too_slow(self, error: type[RagError]) -> RagError:
        return error(
            f"the {self.what} server at {self.root} did not finish its reply within {self.budget.seconds:g} s "
            "(it kept sending, slowly); it may be overloaded: try again, or raise RAG_REQUEST_DEADLINE"
        )

    def too_large(self, error: type[RagError]) -> RagError:
        return error(
            f"the {self.what} server at {self.root} sent a reply over {self.budget.max_bytes / MB:g} MB; "
            f"check {self.setting}, or raise RAG_MAX_RESPONSE_MB"
        )

    def broken(self, exc: Exception, error: type[RagError]) -> RagError:
        return error(
            f"the connection to the {self.what} server at {self.root} broke ({type(exc).__name__}: "
            f"{_one_line(str(exc), 80)}); check that the server is still running and try again"
        )

    def garbage(self, detail: str, error: type[RagError]) -> RagError:
        return error(
            f"the {self.what} server at {self.root} did not answer like an OpenAI-compatible server ({detail}); "
            f"check {self.setting}"
        )

    def refused(self, response: httpx.Response, error: type[RagError]) -> RagError:
        code, message, path = response.status_code, _server_message(response), response.request.url.path
        if code in (401, 403):
            hint = "set RAG_API_KEY to a key the server accepts"
        elif code == 404:
            hint = f"check {self.setting} (the API root, usually ending in /v1) and the model name"
        else:
            hint = "see the server's log"
        return error(f"the {self.what} server at {self.root} answered HTTP {code} to {path} ({message}); {hint}")

    # --- requests ----------------------------------------------------------------------------------
    def send(
        self,
        method: str,
        path: str,
        payload: dict | None = None,
        *,
        stream: bool = False,
        error: type[RagError] = ModelError,
        accept_errors: bool = False,
        idempotent: bool = False,
    ) -> httpx.Response:
        """A successful response (any response, with `accept_errors`); retried with backoff while
        the server cannot be reached.

        Nothing is retried once the server has accepted the request, except 502/503 answers (the
        server or the proxy in front of it is starting up): a slow answer is not sent twice. An
        `idempotent` request is also retried after a timeout, a cut connection and 429/500/504 (not
        after its whole budget went by, nor after a reply over the byte cap: those would repeat).
        """
        retry_status = IDEMPOTENT_RETRY_STATUS if idempotent else RETRY_STATUS
        delay = FIRST_BACKOFF_S
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self.http.build_request(method, path, json=payload)
                response = self.http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise self.unreachable(exc, error) from exc
            except ResponseTooSlow as exc:
                raise self.too_slow(error) from exc
            except ResponseTooLarge as exc:
                raise self.too_large(error) from exc
            except httpx.TimeoutException as exc:
                if last or not idempotent:
                    raise self.timed_out(error) from exc
            except httpx.TransportError as exc:
                if last or not idempotent:
                    raise self.broken(exc, error) from exc
            else:
                if response.status_code < 400 or (accept_errors and response.status_code not in retry_status):
                    return response
                if response.status_code in retry_status and not last:
                    response.close()
                else:
                    try:
                        response.read()
                    except httpx.HTTPError:
                        pass  # the status says enough
                    response.close()
                    raise self.refused(response, error)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def post_json(
        self, path: str, payload: dict, error: type[RagError] = ModelError, idempotent: bool = False
    ) -> object:
        response = self.send("POST", path, payload, error=error, idempotent=idempotent)
        try:
            return deadlines.loads(response.content)
        except ValueError as exc:
            raise self.garbage(f"/{path} returned no JSON: {_one_line(response.text, 60)!r}", error) from exc

    def close(self) -> None:
        self.http.close()


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
        if not settings.base_url:
            raise ModelError(
                f"model {REMOTE_PREFIX}{model} needs the server's URL: set RAG_BASE_URL or pass --base-url"
            )
        return cls(model, settings.base_url, **OpenAIServer.options(settings))

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
                    return _estimate_tokens(text)

            return count
        return _estimate_tokens

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
            raise self.server.garbage(f"an event that is not JSON: {_one_line(data, 60)!r}", GenerationError) from None
        if not isinstance(event, dict):
            raise self.server.garbage(f"an event that is not an object: {_one_line(data, 60)!r}", GenerationError)
        if event.get("error"):
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise GenerationError(
                f"the model server at {self.server.root} failed mid-answer: {_one_line(str(message))}"
            )
        choices = event.get("choices")
        if not isinstance(choices, list):
            raise self.server.garbage(f"an event without choices: {_one_line(data, 60)!r}", GenerationError)
        if not choices:
            return None, None  # e.g. a final usage-only chunk
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise self.server.garbage(f"content that is not text: {_one_line(data, 60)!r}", GenerationError)
        return content, choice.get("finish_reason")

    def close(self) -> None:
        self.server.close()


def _indexed_dimension(index_dir: Path, model: str) -> int | None:
    """The dimension of the vectors the index in `index_dir` holds, if `model` embedded them (else None).

    Read from the catalog's meta table, read-only: this runs before the index is opened."""
    catalog = IndexFiles(index_dir).catalog
    if not catalog.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{catalog.as_uri()}?mode=ro", uri=True)) as db:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimension')"))
    except sqlite3.Error:
        return None  # the index reports its own damage when it opens
    if meta.get("embedding_model") != model or not str(meta.get("dimension", "")).isdigit():
        return None
    return int(meta["dimension"])


def _estimate_tokens(text: str) -> int:
    return max(1, -(-len(text) // CHARS_PER_TOKEN)) if text else 0


class OpenAIEmbedder:
    """Sentence embeddings from an OpenAI-compatible `/embeddings` endpoint (`RAG_EMBEDDING_MODEL=openai:NAME`).

    Same interface as `rag.backends.embeddings.Embedder`. Chunks are still sized with the tokenizer of the
    packaged all-MiniLM-L6-v2 (loaded with `tokenizers`, no torch): the OpenAI API exposes no
    tokenizer, and a 160-word-piece chunk stays far inside the 512+ token windows of served
    embedding models, whatever their own tokenizer counts.

    `encode` keeps `concurrency` requests of `batch_size` texts in flight (a GPU server batches
    concurrent requests; one at a time leaves it idle while each reply travels back); the vectors
    come back in input order. A failed request is retried with backoff (`retries`); if it still
    fails, `encode` raises and the requests not yet sent are dropped.
    """

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
        batch_size: int = 16,
        concurrency: int = 4,
        index_dir: Path | None = None,
    ):
        self.model = model
        self.name = REMOTE_PREFIX + model
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.engine = f"server {api_root(base_url)}"
        self.server = OpenAIServer(
            base_url,
            api_key=api_key,
            timeout=timeout,
            deadline=deadline,
            max_bytes=max_bytes,
            retries=retries,
            what="embedding",
            setting="RAG_EMBEDDING_BASE_URL",
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # The index this embedder's queries search (see `encode_query`); checked until it matched once.
        self.index_dir = index_dir

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> OpenAIEmbedder:
        base_url = settings.embedding_base_url or settings.base_url
        if not base_url:
            raise ModelError(
                f"embedding model {REMOTE_PREFIX}{model} needs the server's URL: set RAG_EMBEDDING_BASE_URL"
            )
        return cls(
            model,
            base_url,
            **OpenAIServer.options(settings),
            batch_size=settings.embed_batch_size,
            concurrency=settings.embedding_concurrency,
            index_dir=settings.index_dir,
        )

    @functools.cached_property
    def _tokenizer(self):
        from tokenizers import Tokenizer

        from rag.backends.embedding_packages import MINILM, packaged_folder

        tokenizer = Tokenizer.from_file(str(packaged_folder(MINILM, None) / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    @functools.cached_property
    def dimension(self) -> int:
        return int(self.encode(["dimension probe"])[0].shape[0])

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit vectors, one per text, in order; `progress(n)` after each batch (in order)."""
        rows: list[np.ndarray] = []
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        for batch, batch_vectors in zip(batches, self._embed_all(batches)):
            rows.extend(batch_vectors)
            if progress:
                progress(len(batch))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len({row.shape[0] for row in rows}) != 1:
            raise self.server.garbage("embeddings of different lengths", ModelError)
        vectors = np.stack(rows).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise self.server.garbage("zero or non-finite embeddings", ModelError)
        return vectors / norms

    def encode_query(self, text: str) -> np.ndarray:
        """A query's vector, checked against the index it will search: the same model name on a server
        can come to mean another model (a server restarted with other weights), and its vectors would
        not fit the index (Chroma would call the store damaged)."""
        vector = self.encode([text])[0]
        if self.index_dir is not None:
            indexed = _indexed_dimension(self.index_dir, self.name)
            if indexed is not None and indexed != vector.shape[0]:
                raise ModelError(
                    f"the embedding model {self.name} on {self.server.root} now makes {vector.shape[0]}-d vectors, "
                    f"but the index in {self.index_dir} holds {indexed}-d ones from it: the server's model changed. "
                    f"Serve the model the index was built with again (check {self.server.setting}), or re-embed the "
                    "indexed papers with the new one: rag ingest --rebuild"
                )
            if indexed is not None:
                self.index_dir = None  # checked: the rest of this process's queries go straight through
        return vector

    def _embed_all(self, batches: list[list[str]]) -> Iterator[list[np.ndarray]]:
        """The vectors of each batch, in order, with up to `concurrency` requests in flight."""
        if self.concurrency == 1 or len(batches) <= 1:
            yield from map(self._embed_batch, batches)
            return
        pool = self._executor()
        futures = [pool.submit(self._embed_batch, batch) for batch in batches]
        try:
            for future in futures:
                yield future.result()
        finally:  # on an error (or a caller that stops early): send nothing more
            for future in futures:
                future.cancel()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="rag-embed")
            return self._pool

    def _embed_batch(self, batch: list[str]) -> list[np.ndarray]:
        body = self.server.post_json("embeddings", {"model": self.model, "input": batch}, idempotent=True)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise self.server.garbage(f"/embeddings returned no list of {len(batch)} embeddings", ModelError)
        try:
            ordered = sorted(data, key=lambda item: item.get("index", 0))
            vectors = [np.asarray(item["embedding"], dtype=np.float64) for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self.server.garbage("/embeddings items without a numeric embedding", ModelError) from None
        out = []
        for vector in vectors:
            if vector.ndim == 2 and vector.shape[0] > 0:
                # llama-cpp-python's server returns one vector per token for models whose GGUF
                # declares no pooling (chat models): mean-pool them, as all-MiniLM-L6-v2 does.
                vector = vector.mean(axis=0)
            if vector.ndim != 1 or vector.shape[0] == 0:
                raise self.server.garbage("/embeddings items that are not vectors", ModelError)
            out.append(vector)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self.server.close()
