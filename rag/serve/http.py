"""The HTTP edge of `rag serve`: request bodies (validated, size- and depth-capped), library errors as
JSON error replies with their status, the bearer-token check, and who may listen off loopback."""

from __future__ import annotations

import functools
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.errors import (
    IndexBusyError,
    IndexMissingError,
    InputError,
    ModelError,
    RagError,
    SettingsError,
    VectorStoreError,
)
from rag.serve.client import is_loopback
from rag.types import Answer

log = logging.getLogger(__name__)
S = TypeVar("S")  # the server whose endpoint methods are wrapped

MAX_BODY_BYTES = 1_000_000  # a conversation of questions; anything bigger is not one


MAX_BODY_DEPTH = 32  # nesting of a body's lists and objects: an answer in the history needs 6


def check_host(host: str, token: str | None) -> None:
    """Listening beyond this machine needs a token: the index and the model would be open to anyone."""
    if not is_loopback(host) and not token:
        raise SettingsError(
            f"refusing to serve on {host} (not loopback) without a token; set RAG_SERVER_TOKEN or use --host 127.0.0.1"
        )


# --- request bodies ------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send options this server has no use for


class SearchBody(_Body):
    query: str
    k: int = Field(default=5, ge=1, le=100)


class EventsBody(_Body):
    """`POST /v1/answer/events`: a question and, for a follow-up, the earlier answers as the server gave them."""

    question: str
    history: list[Answer] = Field(default_factory=list, max_length=50)


class ChatMessage(_Body):
    role: str
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        """The message's text (newer clients send a list of parts)."""
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatBody(_Body):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None  # the server answers with its one model; the response names it
    stream: bool = False


# --- errors --------------------------------------------------------------------------------------
def error_response(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _status(exc: RagError) -> int:
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, IndexMissingError | IndexBusyError | VectorStoreError | ModelError):
        return 503  # the server runs but cannot answer now: the message says what to do
    return 500


def error_of(exc: BaseException) -> tuple[int, str, str]:
    """(status, one-line message, type) of an error; never a traceback."""
    if isinstance(exc, RagError):
        return _status(exc), " ".join(str(exc).split()), type(exc).__name__
    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        return 400, "invalid request: " + "; ".join(problems), "invalid_request_error"
    log.exception("internal error")
    return 500, f"internal error ({type(exc).__name__}); the server log has the details", "internal_error"


def json_errors(
    handler: Callable[[S, Request], Awaitable[Response]],
) -> Callable[[S, Request], Awaitable[Response]]:
    """An endpoint method whose errors become JSON error replies (413 for a body over the limit)."""

    @functools.wraps(handler)
    async def wrapper(self: S, request: Request) -> Response:
        try:
            return await handler(self, request)
        except _TooLarge:
            return error_response(413, f"the request is over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        except Exception as exc:
            return error_response(*error_of(exc))

    return wrapper


class _TooLarge(Exception):
    pass


async def json_body(request: Request) -> Any:
    """The request's JSON, read up to MAX_BODY_BYTES (a huge body is refused, not read whole)."""
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise _TooLarge
    too_deep = InputError(
        f"the request body is nested more than {MAX_BODY_DEPTH} levels deep; send a flatter JSON body"
    )
    try:
        data = json.loads(body)
    except RecursionError:  # a body of 100,000 '[' stops the parser, not the server
        raise too_deep from None
    except ValueError as exc:
        raise InputError(f"the request body is not JSON ({exc})") from exc
    if _depth(data) > MAX_BODY_DEPTH:  # deep values would reach the models' and the answer's own recursion
        raise too_deep
    return data


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in `data` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_BODY_DEPTH:
            stack.extend((child, depth + 1) for child in children)
    return deepest


class TokenAuth:
    """Every endpoint but /health needs `Authorization: Bearer <token>` (compared in constant time).

    /health answers anyone that the server is up, but says what it serves (data dir, model) only
    to a caller with the token: a server reachable off loopback must not tell strangers its paths.
    """

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode()
            authorized = hmac.compare_digest(given, self.expected)
            scope.setdefault("state", {})["authorized"] = authorized
            if not authorized and scope["path"] != "/health":
                response = error_response(
                    401, "missing or wrong token: send Authorization: Bearer <token>", "authentication_error"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- the server ----------------------------------------------------------------------------------
def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
