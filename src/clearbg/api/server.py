"""How the app runs under uvicorn (``clearbg serve`` and the tests): h11 through ``ProblemH11``,
passed as uvicorn's ``http=`` protocol class.

uvicorn answers bytes it cannot parse (a negative or non-numeric Content-Length, a broken header
or chunk, TLS on the plain port) with ``400 text/plain`` and never shows them to the app:
``ProblemH11`` writes that answer as problem+json. uvicorn closes an idle keep-alive connection
after ``timeout_keep_alive``, but a new connection, or a request whose headers stop halfway,
waits for ever: ``ProblemH11`` gives the headers ``header_timeout`` seconds, from the
connection's start or the request's first byte, then answers 408 and closes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from http import HTTPStatus
from typing import ClassVar

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from clearbg.api.problems import PROBLEM, problem_body
from clearbg.errors import ClearbgError, MalformedRequestError, RequestTimeoutError
from clearbg.settings import ServerSettings

__all__ = ["ProblemH11", "ServedH11", "uvicorn_config"]


def uvicorn_config(app: FastAPI, server: ServerSettings, log_level: str = "") -> uvicorn.Config:
    """``server``'s address and limits; proxy headers off: X-Forwarded-For is believed only
    from CLEARBG_GATEWAY__TRUSTED_PROXIES, which the app checks itself."""

    class Protocol(ProblemH11):
        header_timeout = server.header_timeout

    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level=log_level or server.log_level,
        proxy_headers=False,
        http=Protocol,
        lifespan="on",
    )


def problem_response(error: ClearbgError) -> bytes:
    """A whole HTTP/1.1 answer for ``error``, written by the server when there is no request
    the app could answer, then the connection closes."""
    request_id = secrets.token_hex(16)
    body = json.dumps(problem_body(error.status, error.code, error.message, request_id)).encode()
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        f"content-type: {PROBLEM}\r\ncontent-length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class ProblemH11(H11Protocol):
    header_timeout: ClassVar[float] = 30.0

    _deadline: asyncio.TimerHandle | None = None
    _deadline_cycle: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watch()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        error = MalformedRequestError(
            "the request is not HTTP/1.1 this server can read: its request line, a header, "
            "its Content-Length or a chunk is malformed"
        )
        self.transport.write(problem_response(error))
        self.transport.close()

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _watch_headers(self) -> None:
        """Start the clock when the server waits for a request's headers; stop it otherwise.
        The keep-alive timer covers an idle connection, so the clock starts at a new
        connection or at the first byte of a request; the rest of a body the app answered
        without reading counts as such bytes."""
        if self.transport.is_closing() or not self._waiting_for_headers():
            self._stop_watch()
        elif self._deadline is None or self._deadline_cycle is not self.cycle:
            self._stop_watch()
            self._deadline_cycle = self.cycle
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_watch(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._deadline_cycle is not self.cycle:
            return
        if self._waiting_for_headers():
            error = RequestTimeoutError(
                f"the request's headers did not arrive within {self.header_timeout:g} s"
            )
            self.transport.write(problem_response(error))
            self.transport.close()


class ServedH11(ProblemH11):
    """The protocol of ``clearbg serve --workers N``: uvicorn passes it by reference to each
    process, whose app (``clearbg.api.app.app_from_environment``) sets its header timeout."""
