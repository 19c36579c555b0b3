"""What one request tells the middleware that records it: filled by the paid-call service and
the error handler, read once the answer is sent (metrics and the usage record)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CallContext"]


@dataclass
class CallContext:
    request_id: str
    application_id: int | None = None
    api_key_id: int | None = None
    client_ip_hash: str | None = None
    bytes_in: int | None = None  # None: the request's Content-Length
    credits_cents: int = 0
    upstream_ms: float | None = None
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # X-RateLimit-*: on every answer
