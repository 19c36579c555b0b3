"""One ASGI middleware for every request: request id, upload limit while reading, the
rate-limit headers on every answer, Prometheus metrics and a usage record for /v1 calls."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearbg.api.deps import Services
from clearbg.api.problems import PROBLEM, problem_body
from clearbg.errors import PayloadTooLargeError

_FORM_SLACK = 256 * 1024  # multipart boundaries and the small option fields


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
        limit = int(svc.settings.server.upload_limit_mb * 1024 * 1024) + _FORM_SLACK
        started = time.perf_counter()
        sent = {"status": 500, "bytes": 0}
        too_large = PayloadTooLargeError(
            f"the upload is larger than {svc.settings.server.upload_limit_mb:g} MB"
        )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await self._reject(scope, send, too_large, request_id)
            sent["status"] = 413
            state["error_code"] = too_large.code
        else:
            received = 0
            overflow = False

            async def limited_receive() -> Message:
                nonlocal received, overflow
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        overflow = True
                        raise too_large
                return message

            async def tracking_send(message: Message) -> None:
                if overflow:
                    # whatever the framework made of the aborted upload, the answer is 413
                    if message["type"] == "http.response.start":
                        sent["status"] = 413
                        state["error_code"] = too_large.code
                        await self._reject(scope, send, too_large, request_id)
                    return
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

            await self.app(scope, limited_receive, tracking_send)
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

    async def _reject(
        self, scope: Scope, send: Send, error: PayloadTooLargeError, request_id: str
    ) -> None:
        body = json.dumps(problem_body(413, error.code, error.message, request_id)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
