"""`rag serve`: one `Assistant` kept loaded behind an OpenAI-compatible HTTP API (Starlette + uvicorn).

The Assistant's calls block, so they run in worker threads; the Assistant itself answers one question
at a time (llama.cpp holds one KV cache) and makes the others, and searches, wait their turn. The
model is unloaded after `keep_alive` idle seconds and loaded again by the next question.

Follow-ups: an OpenAI client sends the whole conversation back as text. The server remembers the
`Answer` behind each reply it gave (the last `_REMEMBERED`, keyed by the reply's exact text), so an
earlier assistant turn brings its citations, and "they" in the next question finds its paper. A
reply the server does not remember (another server's, edited, forgotten) counts as an answer
without citations: a follow-up is then read together with the question before it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rag.answer.answering import AnswerStream
from rag.answer.prompts import CANNOT_ANSWER
from rag.assistant import Assistant, clean_question
from rag.errors import (
    InputError,
)
from rag.serve.client import is_loopback
from rag.serve.http import (
    ChatBody,
    ChatMessage,
    EventsBody,
    SearchBody,
    TokenAuth,
    check_host,
    error_of,
    json_body,
    json_errors,
    sse,
)
from rag.types import Answer, AnswerEvent, AnswerReport, SearchReport

_REMEMBERED = 256  # answers kept for follow-ups


_END = object()  # the end of an answer's pieces


T = TypeVar("T")


class Server:
    """The endpoints around one Assistant; `create_app` wires them into a Starlette app."""

    POLL_S = 0.25  # how often a client that waits for a sentence is checked for having left

    def __init__(self, assistant: Assistant, keep_alive: float | None = None):
        self.assistant = assistant
        self.keep_alive = assistant.settings.server.keep_alive if keep_alive is None else keep_alive
        self._answering = 0  # answers under way or waiting: the model is not unloaded meanwhile
        self.answers: OrderedDict[str, Answer] = OrderedDict()
        self.papers = assistant.paper_count()
        self._unload_timer: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread (the Assistant blocks; it runs one use at a time itself)."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    # --- endpoints ---------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        """What is served: `rag ask` uses a server it finds only if home and model are the ones it would use."""
        if not getattr(request.state, "authorized", True):  # no token, or not the server's
            return JSONResponse({"status": "ok"})
        a = self.assistant
        return JSONResponse(
            {
                "status": "ok",
                "model": a.model_name,
                "model_spec": a.settings.models.model,  # as --model/RAG_MODEL named it (None: the catalogue default)
                "model_loaded": a.model_loaded,
                "papers": self.papers,
                "home": str(a.settings.home.expanduser().resolve()),
            }
        )

    @json_errors
    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": self.assistant.model_name, "object": "model", "created": 0, "owned_by": "rag"}],
            }
        )

    @json_errors
    async def search(self, request: Request) -> Response:
        body = SearchBody.model_validate(await json_body(request))
        clean_question(body.query)  # an empty query is a 400 before it waits for the worker
        hits = await self.run(functools.partial(self.assistant.search, body.query, k=body.k))
        return JSONResponse(SearchReport.of(body.query, hits).model_dump(mode="json"))

    @json_errors
    async def chat(self, request: Request) -> Response:
        body = ChatBody.model_validate(await json_body(request))
        question, history = self._conversation(body.messages)
        clean_question(question)  # an empty question is a 400, not a broken stream
        reply_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.stream:
            return StreamingResponse(
                self._sse_chunks(request, question, history, reply_id, created),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        pieces: list[str] = []
        answer: Answer | None = None
        async for piece in self._answer(request, question, history):
            if isinstance(piece, Answer):
                answer = piece
            else:
                pieces.append(piece)
        if answer is None:  # the client left; nobody reads this
            return Response(status_code=499)
        return JSONResponse(
            {
                "id": reply_id,
                "object": "chat.completion",
                "created": created,
                "model": answer.model or self.assistant.model_name,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}
                ],
                **self._extras(answer),
            }
        )

    @json_errors
    async def answer_events(self, request: Request) -> Response:
        """Every step of an answer as server-sent events, as `Assistant.events` gives them (what `rag ask`
        shows live); the last one, "done", carries the whole `Answer`."""
        body = EventsBody.model_validate(await json_body(request))
        clean_question(body.question)  # an empty question is a 400, not a broken stream
        return StreamingResponse(
            self._sse_events(request, body.question, body.history),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    # --- answering ---------------------------------------------------------------------------
    def _conversation(self, messages: list[ChatMessage]) -> tuple[str, list[Answer]]:
        """The last user message is the question; each earlier assistant turn is an answer of the history."""
        turns = [m for m in messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise InputError("the last message must be the user's question")
        history: list[Answer] = []
        asked = ""
        for turn in turns[:-1]:
            text = turn.text.strip()
            if turn.role == "user":
                asked = text
            elif text:
                known = self.answers.get(text)
                history.append(known or Answer(question=asked or text, text=text, refused=text == CANNOT_ANSWER))
        return turns[-1].text, history

    def _extras(self, answer: Answer) -> dict[str, Any]:
        """What the server adds to OpenAI's schema: the citations, whether it refused, the timings."""
        report = AnswerReport.of(answer)
        return {
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
            "citations": [c.model_dump(mode="json") for c in report.citations],
            "refused": answer.refused,
            "timings": answer.timings.model_dump(mode="json"),
            "notices": answer.notices,
        }

    async def _answer(self, request: Request, question: str, history: list[Answer]) -> AsyncIterator[str | Answer]:
        """The verified pieces of the answer as they are checked, then the `Answer` (nothing more if
        the client left: its generation is cancelled)."""
        async for event in self._events(request, question, history):
            if event.kind == "sentence":
                yield event.text
            elif event.answer is not None:
                yield event.answer

    async def _events(self, request: Request, question: str, history: list[Answer]) -> AsyncIterator[AnswerEvent]:
        """The answer's events as `Assistant.events` gives them, ending with "done" (not if the client
        left: its generation is cancelled)."""
        self._stop_unload_timer()
        self._answering += 1
        stream = self.assistant.stream(question, history)  # it waits for the answers before it
        events = stream.events()
        try:
            while not stream.cancelled:
                event = await self._next_piece(request, stream, events)
                if not isinstance(event, AnswerEvent):  # _END
                    break
                if event.answer is not None:
                    self._remember(event.answer)
                yield event
        finally:
            stream.cancel()  # a no-op once the answer is complete
            with anyio.CancelScope(shield=True):  # a cancelled request still waits for the model to stop
                close = getattr(events, "close", None)  # a generator: closing it closes the model's stream
                if close is not None:
                    await self.run(close)
                self._answering -= 1
                await self._after_answer()

    async def _next_piece(self, request: Request, stream: AnswerStream, pieces: Iterator[AnswerEvent]) -> object:
        """The next event (or _END); while the model writes it, a client that leaves cancels
        the answer, so it stops at its next token rather than at the end of the sentence."""
        if await request.is_disconnected():
            stream.cancel()
            return _END
        step = asyncio.ensure_future(self.run(next, pieces, _END))
        while not (await asyncio.wait({step}, timeout=self.POLL_S))[0]:
            if await request.is_disconnected():
                stream.cancel()  # `step` returns at the model's next token
        return await step

    async def _sse_chunks(
        self, request: Request, question: str, history: list[Answer], reply_id: str, created: int
    ) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            model = self.assistant.model_name
            return sse(
                {
                    "id": reply_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    **extra,
                }
            )

        yield chunk({"role": "assistant", "content": ""})
        try:
            async for piece in self._answer(request, question, history):
                if isinstance(piece, Answer):
                    yield chunk({}, "stop", **self._extras(piece))
                else:
                    yield chunk({"content": piece})
        except Exception as exc:  # the status line is sent: the error travels as an event
            _, message, kind = error_of(exc)
            yield sse({"error": {"message": message, "type": kind}})
        yield sse("[DONE]")

    async def _sse_events(self, request: Request, question: str, history: list[Answer]) -> AsyncIterator[str]:
        try:
            async for event in self._events(request, question, history):
                yield sse(event.to_dict())
        except Exception as exc:  # the status line is sent: the error travels as an event
            _, message, kind = error_of(exc)
            yield sse({"error": {"message": message, "type": kind}})

    def _remember(self, answer: Answer) -> None:
        self.answers[answer.text.strip()] = answer
        self.answers.move_to_end(answer.text.strip())
        while len(self.answers) > _REMEMBERED:
            self.answers.popitem(last=False)

    # --- keep-alive --------------------------------------------------------------------------
    async def _after_answer(self) -> None:
        """Called once an answer ended: unload now, later, or never (not while other answers wait)."""
        self.papers = await self.run(self.assistant.paper_count)  # another process may have ingested
        if self._answering:
            return
        if self.keep_alive == 0:
            await self.run(self.assistant.unload_model)
        elif self.keep_alive > 0:
            self._unload_timer = asyncio.get_running_loop().create_task(self._unload_later(self.keep_alive))

    def _stop_unload_timer(self) -> None:
        if self._unload_timer is not None:
            self._unload_timer.cancel()
            self._unload_timer = None

    async def _unload_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._answering:
            await self.run(self.assistant.unload_model)  # the Assistant never unloads under a running answer

    def close(self) -> None:
        self._stop_unload_timer()


def create_app(assistant: Assistant, *, token: str | None = None, keep_alive: float | None = None) -> Starlette:
    """The ASGI app serving `assistant` (token, keep_alive: None means the settings' values)."""
    server = Server(assistant, keep_alive)
    secret = assistant.settings.server.server_token
    token = token if token is not None else (secret.get_secret_value() if secret else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        server.close()

    app = Starlette(
        routes=[
            Route("/health", server.health, methods=["GET"]),
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/v1/search", server.search, methods=["POST"]),
            Route("/v1/chat/completions", server.chat, methods=["POST"]),
            Route("/v1/answer/events", server.answer_events, methods=["POST"]),
        ],
        middleware=[Middleware(TokenAuth, token=token)] if token else [],
        lifespan=lifespan,
    )
    app.state.server = server
    return app


def serve(assistant: Assistant, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until Ctrl-C. The caller has loaded the model with `Assistant.load`, which also warmed up
    the embedder and the index, so the first question does not pay for them."""
    import uvicorn

    secret = assistant.settings.server.server_token
    check_host(host, secret.get_secret_value() if secret else None)
    uvicorn.run(create_app(assistant), host=host, port=port, log_level="info")


__all__ = ["Server", "check_host", "create_app", "is_loopback", "serve"]
