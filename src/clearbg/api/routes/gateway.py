"""``POST /api/v1/clearbg``: the Monitor gateway (spec: ../shared/spec/monitor-api.txt).

One multipart field ``image`` (a file, or text: an http(s) URL, raw base64 or a data URL),
``X-App-Key`` names the application, ``X-Api-Key`` (optional) an end-user key that pays; without
it the request is anonymous and counts against the application's daily limit per client IP.
The answer is the upstream's image as it came. Checks run in this order, so the cheapest refusal
comes first and nothing is charged for a request that is refused or fails:

missing X-App-Key 400 -> unknown application 404 (429 when one IP keeps guessing) -> throttle
per client IP 429 -> integration disabled / upstream not configured 503 -> X-Api-Key 401 ->
throttle per key 429 -> anonymous not allowed 401 -> multipart and ``image`` 400/413 -> not an
image 400 -> credits 403 / anonymous daily limit 429 -> upstream 502 -> 200.

Beside ``image`` the spec names no field; the gateway also takes the options of /v1/removebg
(``size``, ``format``, ``bg_color``, ...; a bad or empty one is 400 ``invalid_option``) and
passes them to the upstream. The console's playground uses them. Who pays, the throttles, the
credits and the upstream are the paid-call service's (``clearbg.paid``); this route reads the
request and renders the answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from clearbg.api.deps import ContextDep, Services, ServicesDep
from clearbg.api.forms import options_of
from clearbg.engine import RemoveOptions
from clearbg.errors import (
    EmptyImageError,
    ImageConflictError,
    InvalidMultipartError,
    MissingImageError,
)
from clearbg.gateway.inputs import parse_text

router = APIRouter(tags=["Monitor gateway"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/png": {}}, "description": "The upstream's image, as it came"}
}


@router.post("/api/v1/clearbg", response_class=Response, responses=_RESPONSES)
async def clearbg(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    x_app_key: Annotated[str | None, Header(description="Application API key")] = None,
    x_api_key: Annotated[str | None, Header(description="End-user API key (billing)")] = None,
) -> Response:
    """Remove the background of one image: a file, an http(s) URL, base64 or a data URL."""
    peer = request.client.host if request.client else None
    who = await svc.paid.gateway_caller(
        x_app_key, x_api_key, peer, request.headers.getlist("x-forwarded-for"), ctx
    )
    data, options = await _read_image(request, svc)
    result = await svc.paid.gateway_remove(who, data, options, ctx)
    if result.cutout is not None:
        svc.metrics.images.labels("gateway", result.cutout.model).inc()
    headers = {
        "X-Credits-Charged": f"{ctx.credits_cents / 100:g}",
        # the time of the upstream call (engine or HTTP), so a client can see what the gateway adds
        "Server-Timing": f"upstream;dur={result.upstream_ms:.1f}",
    }
    return Response(result.data, media_type=result.media_type, headers=headers)


async def _read_image(request: Request, svc: Services) -> tuple[bytes, RemoveOptions]:
    """The bytes of the single ``image`` field (a file part, or text to decode or fetch), and
    the options among the other fields."""
    limit = int(svc.settings.server.upload_limit_mb * 1024 * 1024)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidMultipartError("send multipart/form-data with one field named image")
    try:
        form = await request.form(max_files=4, max_fields=32, max_part_size=limit * 2)
    except (MultiPartException, StarletteHTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", "")
        raise InvalidMultipartError(f"the multipart body cannot be read: {detail}") from exc
    try:
        parts = form.getlist("image")
        if not parts:
            raise MissingImageError("the multipart body has no field named image")
        if len(parts) > 1:
            kinds = {"file" if isinstance(p, UploadFile) else "text" for p in parts}
            what = "a file and a text" if len(kinds) == 2 else f"{len(parts)} {kinds.pop()}s"
            raise ImageConflictError(f"send one image field, not {what}")
        options = options_of(form)
        part = parts[0]
        if isinstance(part, UploadFile):
            data = await part.read()
            if not data:
                raise EmptyImageError("the image file is empty")
            return data, options
    finally:
        await form.close()
    text = parse_text(part)
    if text.kind == "url":
        return await svc.fetcher.fetch(text.url), options
    return text.data, options
