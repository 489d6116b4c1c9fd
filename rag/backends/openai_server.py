"""The HTTP side of an OpenAI-compatible server: its address, a request with a total deadline,
retries only where a request can be re-sent, capped replies, and one-line errors naming the server.

Plain httpx (already installed with chromadb, declared in pyproject) rather than the `openai` SDK:
two endpoints are needed, and the retry rule here (reconnect only before the first token, never
re-send a request whose answer has started to stream) is not the SDK's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import httpx

from rag import deadlines
from rag.deadlines import MB, Budget, ResponseTooLarge, ResponseTooSlow
from rag.errors import ModelError, RagError
from rag.settings import Settings

CONNECT_TIMEOUT_S = 5.0


FIRST_BACKOFF_S = 0.5


# 502/503: a proxy whose backend is restarting, a server still loading its model: worth a retry.
RETRY_STATUS = frozenset({502, 503})


# A request that may be sent twice (embeddings: the same input gives the same vectors) is also
# retried after these answers (overloaded, rate-limited, a crashed worker) and after a timeout or a
# connection cut mid-reply.
IDEMPOTENT_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


CHARS_PER_TOKEN = 4  # English text in BPE vocabularies: ~4 characters a token (the fallback count)
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


def one_line(text: str, limit: int = 150) -> str:
    return " ".join(text.split())[:limit]


def _server_message(response: httpx.Response) -> str:
    """The error text of an error response: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the body."""
    try:
        body = deadlines.loads(response.content)
    except ValueError:
        return one_line(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return one_line(str(error))
    return one_line(response.text)


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
            "api_key": settings.models.api_key.get_secret_value() if settings.models.api_key else None,
            "timeout": settings.models.request_timeout,
            "deadline": settings.models.request_deadline,
            "max_bytes": int(settings.models.max_response_mb * MB),
            "retries": settings.models.request_retries,
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
            f"{one_line(str(exc), 80)}); check that the server is still running and try again"
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
            raise self.garbage(f"/{path} returned no JSON: {one_line(response.text, 60)!r}", error) from exc

    def close(self) -> None:
        self.http.close()


def estimate_tokens(text: str) -> int:
    """A token count without the server's tokenizer (about 4 characters a token)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN)) if text else 0
