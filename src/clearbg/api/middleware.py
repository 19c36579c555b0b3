"""One ASGI middleware for every request: request id, the rate-limit headers on every answer,
Prometheus metrics and a usage record for /v1 calls (bodies.py bounds the request bodies)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearbg.api.deps import Services


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
    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self.app = app
        self.services = services
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc = self.services()
        state: dict[str, Any] = scope.setdefault("state", {})
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:64] or self.ids.new()
        state["request_id"] = request_id
        started = time.perf_counter()
        sent = {"status": 500, "bytes": 0}
        length = headers.get("content-length", "")

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                for k, v in state.get("extra_headers", {}).items():
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
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        svc.metrics.requests.labels(path, str(sent["status"])).inc()
        svc.metrics.latency.labels(path).observe(elapsed)
        if state.get("error_code"):
            svc.metrics.errors.labels(state["error_code"]).inc()
        gateway = scope["path"].startswith("/api/v1/")
        if gateway:
            app_label = str(state.get("application_id") or "none")
            svc.metrics.gateway_requests.labels(
                app_label, str(sent["status"]), state.get("error_code") or ""
            ).inc()
            svc.metrics.gateway_latency.labels(app_label, "total").observe(elapsed)
            if state.get("upstream_ms") is not None:
                svc.metrics.gateway_latency.labels(app_label, "upstream").observe(
                    state["upstream_ms"] / 1000
                )
        if scope["path"].startswith("/v1/") or gateway:
            record = {
                "application_id": state.get("application_id"),
                "api_key_id": state.get("api_key_id"),
                "endpoint": path,
                "status": sent["status"],
                "error_code": state.get("error_code"),
                "credits_cents": state.get("credits_cents", 0),
                "bytes_in": state.get("bytes_in", int(length) if length.isdigit() else 0),
                "bytes_out": sent["bytes"],
                "latency_ms": elapsed * 1000,
                "client_ip_hash": state.get("client_ip_hash"),
                "upstream_ms": state.get("upstream_ms"),
            }
            # group commit: concurrent requests share one transaction
            await asyncio.wrap_future(svc.usage_writer.submit(record))
