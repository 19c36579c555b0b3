"""Request bodies read within bounds: their size, their pauses, and how many bodies one client
IP may keep the server waiting for.

``Bodies`` is an ASGI middleware between ``Observe`` and the app. It answers by itself, with
problem+json and ``Connection: close``, when a body is over the upload limit (413), stops
arriving for ``body_timeout`` seconds (408), or would be one more than ``uploads_per_ip`` bodies
from its client IP waiting for bytes at once (429). Before a 413 it reads and discards what the
client still sends, up to a bound: a client that writes its whole body before it reads (Python's
``http.client``, curl without ``Expect: 100-continue``) then reads the answer instead of a
connection reset. (When the app answers before it read the body, the connection stays open and
uvicorn reads the rest by itself.) Starlette's ``RequestBodyLimitMiddleware`` limits the size
only, answers ``text/plain`` and closes without reading, which is the reset.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
from collections import Counter
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearbg.api.problems import PROBLEM, problem_body
from clearbg.errors import (
    ClearbgError,
    PayloadTooLargeError,
    RequestTimeoutError,
    RetryLaterError,
    TooManyUploadsError,
)
from clearbg.gateway.anonymous import Network
from clearbg.paid.context import CallContext
from clearbg.settings import ServerSettings

__all__ = ["Bodies"]

_FORM_SLACK = 256 * 1024  # multipart boundaries and the small option fields
_DISCARD_FACTOR = 4  # before a 413, read and discard up to this many times the limit


class Bodies:
    def __init__(self, app: ASGIApp, server: ServerSettings, trusted: Sequence[Network]) -> None:
        self.app = app
        self.limit = int(server.upload_limit_mb * 1024 * 1024) + _FORM_SLACK
        self.limit_mb = server.upload_limit_mb
        self.pause = server.body_timeout
        self.per_ip = server.uploads_per_ip
        self.trusted = tuple(trusted)
        self.waiting: Counter[str] = Counter()  # client IP -> its receives waiting for bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        body = _Body(self, self._counted_peer(scope), receive)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            # with Expect: 100-continue the client sends no body until asked: answer now
            if int(length) <= _DISCARD_FACTOR * self.limit and b"expect" not in headers:
                await body.discard()
            await self._answer(scope, send, body.too_large())
            return
        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # whatever the app made of the failed read, the answer is ours
            if message["type"] == "http.response.start" and body.failure is not None:
                replaced = True
                await self._answer(scope, send, body.failure)
                return
            await send(message)

        await self.app(scope, body.receive, guarded_send)

    def _counted_peer(self, scope: Scope) -> str | None:
        """The client IP whose waiting bodies are counted; None for a trusted proxy, which
        buffers bodies itself, or a client without an address (a Unix socket)."""
        client = scope.get("client")
        if not client:
            return None
        peer = str(client[0])
        if self.trusted:
            try:
                address = ipaddress.ip_address(peer)
            except ValueError:
                return peer
            if any(address in network for network in self.trusted):
                return None
        return peer

    async def _answer(self, scope: Scope, send: Send, error: ClearbgError) -> None:
        state = scope.setdefault("state", {})
        call = state.get("call")
        if isinstance(call, CallContext):  # Observe records the refusal
            call.error_code = error.code
        body = json.dumps(
            problem_body(error.status, error.code, error.message, state.get("request_id", ""))
        ).encode()
        headers = [
            (b"content-type", PROBLEM.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is not read: nothing else fits
        ]
        if isinstance(error, RetryLaterError):
            headers.append((b"retry-after", str(error.retry_after).encode()))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _Body:
    """One request's body as the app reads it: counted, timed, its waits counted per IP."""

    def __init__(self, policy: Bodies, peer: str | None, receive: Receive) -> None:
        self.policy = policy
        self.peer = peer
        self._receive = receive
        self.received = 0
        self.complete = False
        self.failure: ClearbgError | None = None

    def too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"the upload is larger than {self.policy.limit_mb:g} MB")

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()  # the body is in: only a disconnect comes now
        try:
            message = await self._next()
        except ClearbgError as exc:
            self.failure = exc
            raise
        if self.received > self.policy.limit:
            self.failure = self.too_large()
            await self.discard()
            raise self.failure
        return message

    async def discard(self) -> None:
        """Read and drop what the client still sends, up to a bound, so it reads the answer."""
        while not self.complete and self.received <= _DISCARD_FACTOR * self.policy.limit:
            try:
                await self._next()
            except ClearbgError:
                return  # it stalled or its IP has too many waiting: answer now

    async def _next(self) -> Message:
        """The next message, waiting at most ``body_timeout``; a wait counts against the IP."""
        policy, peer = self.policy, self.peer
        if peer is not None:
            if policy.waiting[peer] >= policy.per_ip:
                raise TooManyUploadsError(
                    f"this address already has {policy.per_ip} uploads waiting for their bytes",
                    retry_after=math.ceil(policy.pause),
                )
            # a receive that has its bytes already returns before another task runs, so only
            # the waits that really wait are ever seen by the check above
            policy.waiting[peer] += 1
        try:
            async with asyncio.timeout(policy.pause):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeoutError(
                f"no part of the request body came for {policy.pause:g} s"
            ) from None
        finally:
            if peer is not None:
                policy.waiting[peer] -= 1
                if not policy.waiting[peer]:
                    del policy.waiting[peer]
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True  # http.disconnect
        return message
