"""A client of a running `rag serve`, so that `rag ask` answers in about the time the answer takes.

A new process that answers in-process pays ~5 s of imports and model loading before the question
(BENCHMARKS "Start-up"); through a warm server it pays for this module instead. So this module and
the CLI's path to it import only httpx, pydantic and the light parts of `rag` (never torch,
chromadb, onnxruntime, llama_cpp or sentence_transformers; tests/test_client.py checks).

Which server: `RAG_SERVER_URL` names one that must answer (an error if it does not); otherwise a
quick look at `server_probe_url` (default http://127.0.0.1:8765) finds one if it runs. A server
found that way is used only if it serves the data dir and the model this command would use: answers
from another corpus would look right and be wrong.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from rag import deadlines, errors
from rag.backends.sse import TooLarge, iter_lines, iter_sse_data
from rag.deadlines import MB, Budget, ResponseTooLarge, ResponseTooSlow
from rag.errors import RagError, ServerError
from rag.settings import Settings
from rag.types import Answer, AnswerEvent, SearchReport

if TYPE_CHECKING:
    from rag.answer.answering import AnswerPipeline, AnswerStream

PROBE_TIMEOUT_S = 0.3  # a refused connection is instant; a server that is up answers /health in milliseconds
# /health in all: at the probed address (a server that trickles bytes is given up), and at RAG_SERVER_URL
# (or the request deadline, if shorter).
PROBE_BUDGET = Budget(1.0, MB)
HEALTH_BUDGET = Budget(10.0, MB)
CONNECT_TIMEOUT_S = 5.0  # a server named in RAG_SERVER_URL may be on another machine


def _root(url: str) -> str:
    """The server's root: `rag serve` prints its API as http://HOST:PORT/v1, and users paste that."""
    return url.strip().rstrip("/").removesuffix("/v1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _HangUp:
    """The connection of one answer, closed at once from any thread by `hang_up()`.

    While the server's model reads the passages no event comes, and the thread iterating the answer
    is blocked in a read: a cancel that only sets a flag would be seen at the first token (15-21 s
    later with the 1.5B model), and the server, which stops a model when its client leaves, would
    go on. Shutting the socket down ends that read now and tells the server the client left.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.done = False

    def attach(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._socket = sock
            done = self.done
        if done:  # cancelled while the request was being sent
            self.hang_up()

    def hang_up(self) -> None:
        with self._lock:
            self.done = True
            sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the server or by the reader
                sock.shutdown(socket.SHUT_RDWR)


class ServerClient:
    """The answering part of `Assistant` (`events`, `ask`, `search`), done by a `rag serve` over HTTP."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 120.0,
        deadline: float = 600.0,
        max_bytes: int = 64 * MB,
    ):
        self.url = _root(url)
        self.model = "?"  # the served model's name, once /health said it
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # `timeout` is the silence allowed between two events: a queued question waits its turn;
        # `deadline` bounds a whole answer, however the server trickles it.
        self.health_budget = Budget(min(deadline, HEALTH_BUDGET.seconds), HEALTH_BUDGET.max_bytes)
        self.http = deadlines.Client(
            Budget(deadline, max_bytes),
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
        )

    # --- requests ------------------------------------------------------------------------------
    def health(self, timeout: float | None = None, budget: Budget | None = None) -> dict[str, Any]:
        """What the server serves (see `rag.serve.server.Server.health`)."""
        budget = budget or self.health_budget
        try:
            response = self.http.get(
                "/health", timeout=timeout or httpx.USE_CLIENT_DEFAULT, extensions=budget.extensions()
            )
        except httpx.HTTPError as exc:
            raise self.failed(exc) from exc
        data = self._json(response)
        if data == {"status": "ok"}:  # a server with a token tells what it serves only to its token
            raise self.needs_token()
        if not isinstance(data, dict) or data.get("status") != "ok" or "home" not in data:
            raise ServerError(f"{self.url} does not answer as a `rag serve` of this version does; check RAG_SERVER_URL")
        self.model = str(data.get("model") or "?")
        return data

    def events(
        self, question: str, history: Sequence[Answer] | None = None, connection: _HangUp | None = None
    ) -> Iterator[AnswerEvent]:
        """The answer's steps as `Assistant.events` gives them; the last, "done", holds the `Answer`.
        Stop iterating to stop the server's model (the connection closes); `connection.hang_up()`
        closes it from another thread, even while no event comes."""
        body = {"question": question, "history": [a.model_dump(mode="json") for a in history or []]}
        try:
            with self.http.stream("POST", "/v1/answer/events", json=body) as response:
                if connection is not None:
                    connection.attach(response)
                if response.status_code != 200:
                    response.read()
                    self._json(response)  # raises the server's error
                for data in iter_sse_data(iter_lines(response.iter_bytes())):
                    try:
                        event = self._event(deadlines.loads(data))
                    except (ValueError, TypeError, KeyError) as exc:
                        raise self.garbage(f"an event that is not one of an answer: {exc}") from exc
                    yield event
                    if event.kind == "done":
                        return
        except TooLarge as exc:
            raise self.garbage(str(exc)) from exc
        except (httpx.ConnectError, ResponseTooSlow, ResponseTooLarge) as exc:
            raise self.failed(exc) from exc
        except httpx.HTTPError as exc:  # it went silent or away mid-answer
            detail = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise ServerError(
                f"the rag server at {self.url} stopped answering ({detail}); ask again, or pass --no-server"
            ) from exc
        raise ServerError(f"the rag server at {self.url} ended the answer before it was complete; ask again")

    def stream(self, question: str, history: Sequence[Answer] | None = None) -> AnswerStream:
        """As `Assistant.stream`: iterate for verified pieces or call `.events()`; `cancel()` (from
        any thread) closes the connection at once, which stops the server's model at its next step."""
        from rag.answer.answering import AnswerStream  # for the chat only: `rag ask` does without it

        connection = _HangUp()

        def pipeline(cancel: threading.Event) -> AnswerPipeline:
            steps = self.events(question, history, connection)
            try:
                for event in steps:
                    if cancel.is_set():
                        return None
                    if event.kind == "done":
                        return event.answer
                    yield event
            except ServerError:
                if cancel.is_set():  # the connection this side closed
                    return None
                raise
            finally:
                steps.close()  # type: ignore[attr-defined]
            return None

        return AnswerStream(pipeline, on_cancel=connection.hang_up)

    def ask(self, question: str, history: Sequence[Answer] | None = None) -> Answer:
        for event in self.events(question, history):
            if event.answer is not None:
                return event.answer
        raise ServerError(f"the rag server at {self.url} ended the answer before it was complete; ask again")

    def search(self, query: str, k: int = 5) -> SearchReport:
        try:
            response = self.http.post("/v1/search", json={"query": query, "k": k})
        except httpx.HTTPError as exc:
            raise self.failed(exc) from exc
        return SearchReport.model_validate(self._json(response))

    def close(self) -> None:
        self.http.close()

    # --- what the server said -------------------------------------------------------------------
    def failed(self, exc: Exception) -> ServerError:
        """The error of a request that got no complete reply."""
        if isinstance(exc, ResponseTooSlow):
            return ServerError(
                f"the rag server at {self.url} did not finish its reply within {exc.seconds:g} s (it kept sending, "
                "slowly); ask again, raise RAG_REQUEST_DEADLINE, or pass --no-server"
            )
        if isinstance(exc, ResponseTooLarge):
            return ServerError(
                f"the rag server at {self.url} sent a reply over {exc.max_bytes / MB:g} MB; is it a `rag serve`? "
                "Check RAG_SERVER_URL, raise RAG_MAX_RESPONSE_MB, or pass --no-server"
            )
        return self.unreachable(exc)

    def garbage(self, detail: str) -> ServerError:
        return ServerError(
            f"the rag server at {self.url} did not answer as a `rag serve` does ({detail[:120]}); "
            "check RAG_SERVER_URL, or pass --no-server"
        )

    def unreachable(self, exc: Exception) -> ServerError:
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        return ServerError(
            f"no rag server answers at {self.url} ({detail}); start one with `rag serve`, or pass --no-server"
        )

    def needs_token(self) -> ServerError:
        return ServerError(
            f"the rag server at {self.url} needs its token: set RAG_SERVER_TOKEN to the one it was started with "
            "(or pass --no-server)"
        )

    def _json(self, response: httpx.Response) -> Any:
        """The response's JSON; a server error becomes the error the library would have raised in-process."""
        if response.status_code == 401:
            raise self.needs_token()
        try:
            data = deadlines.loads(response.content)
        except ValueError as exc:
            raise ServerError(f"{self.url} answered {response.status_code} without JSON; is it a `rag serve`?") from exc
        if response.status_code != 200 or (isinstance(data, dict) and "error" in data):
            raise self._error(data)
        return data

    def _event(self, data: dict[str, Any]) -> AnswerEvent:
        if "error" in data:
            raise self._error(data)
        try:
            return AnswerEvent.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError(f"{self.url} sent an event that is not an answer's: {exc}; is it a `rag serve`?") from exc

    def _error(self, data: Any) -> RagError:
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return ServerError(f"the rag server at {self.url} answered with an error it did not explain")
        message, kind = str(error.get("message", "")), str(error.get("type", ""))
        cls = getattr(errors, kind, None)  # the server names the library's error class
        if isinstance(cls, type) and issubclass(cls, RagError):
            return cls(message)
        return ServerError(f"the rag server at {self.url}: {message}")


def _same_model(wanted: str, health: dict[str, Any]) -> bool:
    from rag.backends.models import parse_model_spec

    served = health.get("model_spec") or health.get("model") or ""
    if wanted in (served, health.get("model")):
        return True
    try:
        a, b = parse_model_spec(wanted), parse_model_spec(served)
    except RagError:
        return False
    if a.path is not None and b.path is not None:
        return a.path.expanduser().resolve() == b.path.expanduser().resolve()
    return (a.kind, a.name) == (b.kind, b.name)


def mismatch(settings: Settings, model: str | None, health: dict[str, Any]) -> str | None:
    """Why this server cannot answer for this command (None: it can)."""
    home = settings.home.expanduser().resolve()
    if Path(str(health["home"])) != home:
        return f"it serves the data dir {health['home']}, not {home}"
    if model and not _same_model(model, health):
        return f"it serves the model {health.get('model')}, not {model}"
    return None


def find_server(settings: Settings, model: str | None, note: Callable[[str], object]) -> ServerClient | None:
    """The server this command should answer through, or None to answer in-process.

    `model`: the model the user asked for (--model/RAG_MODEL), None if any will do. `note` hears why
    a server that was found is not used."""
    token = settings.server.server_token.get_secret_value() if settings.server.server_token else None
    connect = functools.partial(
        ServerClient,
        token=token,
        timeout=settings.models.request_timeout,
        deadline=settings.models.request_deadline,
        max_bytes=int(settings.models.max_response_mb * MB),
    )
    if settings.server.server_url:
        client = connect(settings.server.server_url)
        try:
            health = client.health()
            problem = mismatch(settings, model, health)
            if problem and (
                model or is_loopback(urlsplit(client.url).hostname or "")
            ):  # another machine's paths are its own
                raise ServerError(
                    f"not answering through the rag server at {client.url}: {problem}; "
                    "unset RAG_SERVER_URL or pass --no-server to answer here"
                )
        except BaseException:
            client.close()
            raise
        return client
    if not settings.server.server_probe_url:
        return None
    client = connect(settings.server.server_probe_url)
    with contextlib.ExitStack() as unused:
        unused.callback(client.close)
        try:
            health = client.health(timeout=PROBE_TIMEOUT_S, budget=PROBE_BUDGET)
        except ServerError:
            return None  # nothing there (or not ours): answer here, silently
        if problem := mismatch(settings, model, health):
            note(f"note: not using the rag server at {client.url}: {problem}; answering here")
            return None
        unused.pop_all()
    return client


__all__ = ["ServerClient", "find_server", "is_loopback", "mismatch"]
