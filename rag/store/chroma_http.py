"""A Chroma `HttpClient` whose every request has a deadline and a cap on the bytes it reads.

chromadb's HTTP client (`chromadb.api.fastapi.FastAPI`, chromadb 1.5) builds its httpx session with
`timeout=None`: a server that accepts the connection and never answers hangs the caller forever
(`rag ingest` sat for minutes without a line of output), and one that sends a byte every few seconds
would hang it even with a timeout. chromadb has no setting for it and accepts no other HTTP
implementation (`chroma_api_impl` must name its own class), so `DeadlineClient` replaces the session
of the client's server component right after chromadb creates it and before the first request
(`get_user_identity`, the first call of `Client.__init__`) with a `rag.deadlines.Client`: a timeout
on each wait, and a total deadline (`DEADLINE_S`) and byte cap (`MAX_RESPONSE_BYTES`) on each
request. The session is the one attribute of chromadb's internals this relies on; tests/test_hangs.py
fails if it moves. Importing this module imports chromadb.

The limits are constants: the vector store is opened by code that has no settings to pass (rag.store.vectors).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from chromadb.api.client import Client
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT
from chromadb.config import Settings as ChromaSettings

from rag import deadlines

CONNECT_TIMEOUT_S = 5.0
# Seconds a Chroma server may stay silent in one request (reading, writing, or waiting for a pooled
# connection). Ingest sends 64 papers' chunks per request; a server needs well under a second.
TIMEOUT_S = 60.0
# Seconds one request may take in all, and the bytes its reply may hold (the largest replies: a page of
# 5,000 ids, or the vectors of a filtered search's candidates, a few MB).
DEADLINE_S = 300.0
MAX_RESPONSE_BYTES = 256 * deadlines.MB


class DeadlineClient(Client):
    """chromadb's client for a server, with a deadline on every request of its HTTP session from the first on."""

    def get_user_identity(self):
        server = self._server
        given = server._session
        verify = server._settings.chroma_server_ssl_verify
        server._session = deadlines.Client(
            deadlines.Budget(DEADLINE_S, MAX_RESPONSE_BYTES),
            timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            limits=server.http_limits,
            headers=given.headers,
            **({} if verify is None else {"verify": verify}),
        )
        given.close()
        return super().get_user_identity()


def http_client(host: str, port: int, ssl: bool, headers: Mapping[str, str]) -> Client:
    """What `chromadb.HttpClient(host, port, ssl, headers)` returns, with deadlines; telemetry off."""
    settings = ChromaSettings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI",
        chroma_server_host=host,
        chroma_server_http_port=port,
        chroma_server_ssl_enabled=ssl,
        chroma_server_headers=dict(headers),
        anonymized_telemetry=False,
    )
    try:
        return DeadlineClient(tenant=DEFAULT_TENANT, database=DEFAULT_DATABASE, settings=settings)
    except Exception as exc:
        # chromadb turns a transport failure of its first request into a ValueError; the caller
        # (rag.store.vectors) words transport failures ("does not answer"), so hand it the original.
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, httpx.TransportError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None and cause is not exc:
            raise cause from exc
        raise
