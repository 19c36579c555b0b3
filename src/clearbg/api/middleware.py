"""One ASGI middleware for every request: request id, the rate-limit headers on every answer,
Prometheus metrics and a usage record for /v1 calls (bodies.py bounds the request bodies).
What a request tells it comes in one typed ``CallContext`` (``scope["state"]["call"]``)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearbg.accounts.usage import PLAYGROUND
from clearbg.api.deps import Services
from clearbg.paid.context import CallContext


class RequestIds:
    """Random 32-hex-digit request ids (as unguessable as ``uuid4().hex``: they name ledger
    rows), cut from one ``os.urandom`` call per 256 ids instead of a system call per request."""

    _BATCH = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def new(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(self._BATCH), 0
        self._at += 16
        return self._pool[self._at - 16 : self._at].hex()


class Observe:
    def __init__(
        self,
        app: ASGIApp,
        services: Callable[[], Services],
        paths: Callable[[], Sequence[str]],
    ) -> None:
        self.app = app
        self.services = services
        self.paths = paths
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc = self.services()
        state: dict[str, Any] = scope.setdefault("state", {})
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:64] or self.ids.new()
        state["request_id"] = request_id  # the console's pages show it
        ctx = state["call"] = CallContext(request_id)
        started = time.perf_counter()
        sent = {"status": 500, "bytes": 0}
        length = headers.get("content-length", "")

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                for k, v in ctx.headers.items():
                    extra.append((k.lower().encode(), str(v).encode()))
                names = {k for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in extra if h[0] not in names),
                ]
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, tracking_send)
        elapsed = time.perf_counter() - started
        path = self._endpoint(scope)
        svc.metrics.requests.labels(path, str(sent["status"])).inc()
        svc.metrics.latency.labels(path).observe(elapsed)
        if ctx.error_code:
            svc.metrics.errors.labels(ctx.error_code).inc()
        gateway = scope["path"].startswith("/api/v1/")
        if gateway and ctx.application_id is None and headers.get("x-app-key"):
            # refused before the route read it (a 413): still the application's request
            ctx.application_id = await svc.paid.application_id(headers["x-app-key"])
        if gateway:
            app_label = str(ctx.application_id or "none")
            svc.metrics.gateway_requests.labels(
                app_label, str(sent["status"]), ctx.error_code or ""
            ).inc()
            svc.metrics.gateway_latency.labels(app_label, "total").observe(elapsed)
            if ctx.upstream_ms is not None:
                svc.metrics.gateway_latency.labels(app_label, "upstream").observe(
                    ctx.upstream_ms / 1000
                )
        # the console's playground is a paid gateway call too: its record is the ledger's twin
        if scope["path"].startswith("/v1/") or gateway or path == PLAYGROUND:
            bytes_in = ctx.bytes_in
            if bytes_in is None:
                bytes_in = int(length) if length.isdigit() else 0
            record = {
                "application_id": ctx.application_id,
                "api_key_id": ctx.api_key_id,
                "endpoint": path,
                "status": sent["status"],
                "error_code": ctx.error_code,
                "credits_cents": ctx.credits_cents,
                "bytes_in": bytes_in,
                "bytes_out": sent["bytes"],
                "latency_ms": elapsed * 1000,
                "client_ip_hash": ctx.client_ip_hash,
                "upstream_ms": ctx.upstream_ms,
            }
            # group commit: concurrent requests share one transaction
            await asyncio.wrap_future(svc.usage_writer.submit(record))

    def _endpoint(self, scope: Scope) -> str:
        """The route's path; for a request refused before routing (a 413), the path of the
        API operation it was sent to."""
        path = getattr(scope.get("route"), "path", None)
        if path:
            return str(path)
        if self._patterns is None:
            self._patterns = [(compile_path(p)[0], p) for p in self.paths()]
        for pattern, template in self._patterns:
            if pattern.match(scope["path"]):
                return template
        return "unmatched"
