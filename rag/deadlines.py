"""HTTP clients whose every request has a total deadline and a cap on the bytes it reads.

httpx's timeouts bound each wait for the next bytes, never a whole request: a server that sends one
byte every few seconds (in its status line, its headers, its body or an event stream) keeps every
read short and the request alive for as long as it likes (`rag ask` sat 273 s without a line of
output). So `Client` sends its requests through `Transport`, which gives each request a `Budget`:
from the first byte sent to the last byte read, every socket read and write (connect, headers, body,
each piece of a stream) waits at most until the request's deadline, and the bytes read are counted.
Past the deadline a read raises `ResponseTooSlow` (an `httpx.ReadTimeout`); past the byte cap,
`ResponseTooLarge` (an `httpx.ReadError`), before the body is in memory. Callers word them.

The budget reaches the sockets through a wrapper around httpcore's network backend (a public httpcore
interface), installed in the connection pool httpx builds: `_pool` and the proxy-transport hook are
the two internals of httpx this relies on; tests/test_hangs.py fails if they move. The budget in
force is per thread (sync httpx reads in the caller's thread), set only while httpx is inside a read
of this request, so a caller that iterates a stream slowly is never charged for its own pauses.

Requests ask for `Accept-Encoding: identity`: the cap counts bytes on the wire, and a compressed
reply could expand far past it in memory.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

EXTENSION = "rag.budget"  # request.extensions key: a `Budget` for this request instead of the client's
MB = 1_000_000


@dataclass(frozen=True)
class Budget:
    """The most one request may take: `seconds` from start to end, `max_bytes` read (headers included)."""

    seconds: float
    max_bytes: int

    def extensions(self) -> dict[str, Any]:
        """`client.get(url, extensions=budget.extensions())`: this budget for that one request."""
        return {EXTENSION: self}


class ResponseTooSlow(httpx.ReadTimeout):
    """The request did not end within its budget's seconds, whatever the server sent meanwhile."""

    def __init__(self, seconds: float):
        super().__init__(f"no complete reply within {seconds:g} s")
        self.seconds = seconds


class ResponseTooLarge(httpx.ReadError):
    """The reply was longer than its budget's bytes; the rest was not read."""

    def __init__(self, max_bytes: int):
        super().__init__(f"a reply over {max_bytes / MB:g} MB")
        self.max_bytes = max_bytes


class _Spending:
    """One request's budget being spent: its deadline and the bytes read so far."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.at = time.monotonic() + budget.seconds
        self.received = 0

    def timeout(self, timeout: float | None) -> float:
        """The socket timeout for the next wait: the caller's, or less if the deadline comes first."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise ResponseTooSlow(self.budget.seconds)
        return left if timeout is None else min(timeout, left)

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def count(self, received: int) -> None:
        self.received += received
        if self.received > self.budget.max_bytes:
            raise ResponseTooLarge(self.budget.max_bytes)


_local = threading.local()


@contextlib.contextmanager
def _spending(spending: _Spending) -> Iterator[None]:
    outer = getattr(_local, "spending", None)
    _local.spending = spending
    try:
        yield
    finally:
        _local.spending = outer


def _current() -> _Spending | None:
    spending: _Spending | None = getattr(_local, "spending", None)
    return spending


class _Stream(httpcore.NetworkStream):
    """A connection whose reads and writes wait no longer than the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream):
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        spending = _current()
        if spending is None:
            return self.inner.read(max_bytes, timeout)
        try:
            data = self.inner.read(max_bytes, spending.timeout(timeout))
        except httpcore.ReadTimeout:
            if spending.expired():  # the deadline, not the server's silence, ended the wait
                raise ResponseTooSlow(spending.budget.seconds) from None
            raise
        spending.count(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        spending = _current()
        if spending is None:
            return self.inner.write(buffer, timeout)
        try:
            self.inner.write(buffer, spending.timeout(timeout))
        except httpcore.WriteTimeout:
            if spending.expired():
                raise ResponseTooSlow(spending.budget.seconds) from None
            raise

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> _Stream:
        spending = _current()
        if spending is not None:
            timeout = spending.timeout(timeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's network backend, handing out `_Stream`s."""

    def __init__(self, inner: httpcore.NetworkBackend):
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> _Stream:
        spending = _current()
        if spending is not None:
            timeout = spending.timeout(timeout)
        return _Stream(self.inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> _Stream:
        spending = _current()
        if spending is not None:
            timeout = spending.timeout(timeout)
        return _Stream(self.inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _Body(httpx.SyncByteStream):
    """A response body read under its request's budget (each piece is read with the budget in force)."""

    def __init__(self, inner: httpx.SyncByteStream, spending: _Spending):
        self.inner = inner
        self.spending = spending

    def __iter__(self) -> Iterator[bytes]:
        pieces = iter(self.inner)
        while True:
            with _spending(self.spending):
                piece = next(pieces, None)
            if piece is None:
                return
            yield piece

    def close(self) -> None:
        self.inner.close()


class Transport(httpx.HTTPTransport):
    """httpx's transport, with a `Budget` for every request (the client's, or the request's own)."""

    def __init__(self, budget: Budget, **kwargs: Any):
        super().__init__(**kwargs)
        pool = self._pool  # httpx's connection pool (or proxy): only its network backend is replaced
        pool._network_backend = _Backend(pool._network_backend)
        self.budget = budget

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        budget = request.extensions.get(EXTENSION, self.budget)
        spending = _Spending(budget)
        request.headers["Accept-Encoding"] = "identity"
        with _spending(spending):
            response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _Body(response.stream, spending)
        return response


class Client(httpx.Client):
    """An `httpx.Client` (same arguments) whose every request has `budget`, proxied ones included."""

    def __init__(self, budget: Budget, **kwargs: Any):
        self.budget = budget  # before httpx's __init__, which builds the proxy transports
        super().__init__(transport=Transport(budget, **_transport_args(kwargs)), **kwargs)

    def _init_proxy_transport(self, proxy: httpx.Proxy, *args: Any, **kwargs: Any) -> httpx.BaseTransport:
        names = ("verify", "cert", "trust_env", "http1", "http2", "limits")
        return Transport(self.budget, proxy=proxy, **dict(zip(names, args)), **kwargs)


def _transport_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of httpx.Client that httpx would also hand to the default transport it builds."""
    return {
        name: kwargs[name] for name in ("verify", "cert", "trust_env", "http1", "http2", "limits") if name in kwargs
    }


def loads(text: str | bytes) -> Any:
    """`json.loads`, with JSON nested too deeply to parse a ValueError like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


__all__ = ["Budget", "Client", "ResponseTooLarge", "ResponseTooSlow", "Transport", "loads"]
