"""What makes a cut-out for a paid call: one ``Upstream`` interface, two implementations.

``EngineUpstream`` runs the local engine under its limit; ``HttpUpstream`` posts to another
ClearBG AI API (``POST {url}/v1/removebg``), where every failure is an ``UpstreamError`` (502):
an error answer, a time-out, a refused connection, or a 2xx that is not an image; its answer's
bytes and ``Content-Type`` are passed on as they came.

Each takes a ``reserve`` callback (blocking: it writes to the database) and calls it once the
input is known to be good, just before the expensive part: so bad input moves no credit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import httpx

from clearbg.engine import Cutout, Engine, RemoveOptions
from clearbg.engine.imageio import Probe
from clearbg.engine.limit import EngineLimit
from clearbg.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)

__all__ = ["EngineUpstream", "HttpUpstream", "Upstream", "UpstreamResult", "call_http_upstream"]

_DEFAULTS = RemoveOptions().to_fields()


@dataclass(frozen=True)
class UpstreamResult:
    data: bytes
    media_type: str
    upstream_ms: float
    cutout: Cutout | None = None  # the local engine's cut-out (size, subject box, model)


class Upstream(Protocol):
    async def remove(
        self, probe: Probe, options: RemoveOptions, request_id: str, reserve: Callable[[], None]
    ) -> UpstreamResult: ...


@dataclass(frozen=True)
class EngineUpstream:
    """The engine in this process, inside its limit (slots and megapixels): ``reserve`` once
    the photo has decoded (bad input fails before), then the model, refining and encoding."""

    engine: Engine
    limit: EngineLimit

    async def remove(
        self, probe: Probe, options: RemoveOptions, request_id: str, reserve: Callable[[], None]
    ) -> UpstreamResult:
        def work() -> Cutout:
            started = time.perf_counter()
            mask = self.engine.mask(
                probe,
                options.model,
                options.flip,
                combine=options.combine,
                partner=options.partner,
                decoded=reserve,
            )
            cut = self.engine.finish(mask, options)
            cut.timings["total"] = time.perf_counter() - started
            return cut

        w, h = probe.size
        cut = await self.limit.run(work, pixels=w * h)
        return UpstreamResult(cut.data, cut.media_type, cut.timings["total"] * 1000, cut)


@dataclass(frozen=True)
class HttpUpstream:
    """Another ClearBG AI API; the options that differ from the defaults go along as fields."""

    client: httpx.AsyncClient
    url: str
    api_key: str | None
    timeout: float
    connect_timeout: float

    async def remove(
        self, probe: Probe, options: RemoveOptions, request_id: str, reserve: Callable[[], None]
    ) -> UpstreamResult:
        await anyio.to_thread.run_sync(reserve)
        fields = {k: v for k, v in options.to_fields().items() if _DEFAULTS.get(k) != v}
        return await call_http_upstream(
            self.client,
            self.url,
            self.api_key,
            probe.data,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            request_id=request_id,
            fields=fields,
        )


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
