"""Errors as ``application/problem+json`` (RFC 9457), rendered in one place.

Every body has ``type``, ``title``, ``status``, ``detail``, the stable ``code`` and the
``request_id``. Only our own bugs answer 500, and never with a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from clearbg.api.deps import call_context
from clearbg.errors import ClearbgError, RetryLaterError

log = logging.getLogger("clearbg.api")

PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem_body(status: int, code: str, detail: str, request_id: str) -> dict[str, object]:
    """The RFC 9457 body every error has, wherever it is rendered."""
    return {
        "type": f"urn:clearbg:error:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }


def problem(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    ctx = call_context(request)
    body = problem_body(status, code, detail, ctx.request_id)
    extra = dict(headers or {})
    extra.update(ctx.headers)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=extra)


HtmlErrors = Callable[[Request, int, str, str, dict[str, str]], Response]


def _rendered(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """problem+json, or a page for the console's paths (``app.state.html_errors``)."""
    html: HtmlErrors | None = getattr(request.app.state, "html_errors", None)
    if html is not None and request.scope["path"].startswith("/console"):
        return html(request, status, code, detail, dict(headers or {}))
    return problem(request, status, code, detail, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ClearbgError)
    async def _clearbg(request: Request, exc: ClearbgError) -> Response:
        headers = {}
        if isinstance(exc, RetryLaterError):
            headers["Retry-After"] = str(exc.retry_after)
        call_context(request).error_code = exc.code
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return _rendered(request, exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        call_context(request).error_code = "invalid_request"
        return _rendered(request, 400, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        call_context(request).error_code = code
        return _rendered(request, exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        call_context(request).error_code = "internal_error"
        return problem(request, 500, "internal_error", "something went wrong on our side")
