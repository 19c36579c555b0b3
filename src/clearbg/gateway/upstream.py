"""The gateway's upstream over HTTP: another ClearBG AI API (``POST {url}/v1/removebg``).

Every failure is an ``UpstreamError`` (502): an error answer, a time-out, a refused connection,
or a 2xx that is not an image. The answer's bytes and ``Content-Type`` are passed on as they came.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from clearbg.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)

__all__ = ["UpstreamResult", "call_http_upstream"]


@dataclass(frozen=True)
class UpstreamResult:
    data: bytes
    media_type: str
    upstream_ms: float


async def call_http_upstream(
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str | None,
    image: bytes,
    *,
    timeout: float,
    connect_timeout: float,
    request_id: str = "",
    fields: dict[str, str] | None = None,
) -> UpstreamResult:
    """POST the image (and the output ``fields``: size, format, ...) to the upstream."""
    url = base_url.rstrip("/") + "/v1/removebg"
    headers = {"X-Request-Id": request_id} if request_id else {}
    if api_key:
        headers["X-API-Key"] = api_key
    started = time.perf_counter()
    try:
        # one client for the process: connections to the upstream are kept and reused
        response = await client.post(
            url,
            headers=headers,
            files={"image": ("image", image, "application/octet-stream")},
            data=fields or {},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError("the upstream did not answer in time") from exc
    except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
        raise UpstreamUnreachableError(f"the upstream cannot be reached: {exc}") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the upstream request failed: {exc}") from exc
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        code = ""
        if response.headers.get("content-type", "").endswith("json"):
            try:
                code = str(response.json().get("code", ""))
            except ValueError:
                code = ""
        raise UpstreamError(
            f"the upstream answered {response.status_code}" + (f" ({code})" if code else "")
        )
    media_type = response.headers.get("content-type", "")
    if not media_type.lower().startswith("image/") or not response.content:
        raise UpstreamBadResponseError(
            f"the upstream answered {media_type or 'no content type'}, not an image"
        )
    return UpstreamResult(response.content, media_type, elapsed)
