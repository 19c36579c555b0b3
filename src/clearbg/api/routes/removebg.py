"""``POST /v1/removebg``: one photo in, one cut-out out, charged only when delivered."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, UploadFile
from fastapi.responses import Response

from clearbg.api.deps import CallerDep, ContextDep, ServicesDep
from clearbg.api.forms import form_options
from clearbg.api.images import photo_of
from clearbg.engine import Cutout, RemoveOptions
from clearbg.engine.compose import Box
from clearbg.paid.idempotency import Answer

router = APIRouter(tags=["remove background"])

_IMAGE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "description": "The cut-out",
    }
}


def cutout_headers(cut: Cutout, charged_cents: int, box: Box | None = None) -> dict[str, str]:
    """The answer's headers; ``box``: the subject's box when it was moved after the cut-out."""
    box = cut.foreground if box is None else box
    return {
        "X-Width": str(cut.width),
        "X-Height": str(cut.height),
        "X-Credits-Charged": f"{charged_cents / 100:g}",
        "X-Foreground-Top": str(box.top),
        "X-Foreground-Left": str(box.left),
        "X-Foreground-Width": str(box.width),
        "X-Foreground-Height": str(box.height),
        "X-Model": cut.model,
        "X-Processing-Ms": str(round(cut.timings.get("total", 0.0) * 1000)),
    }


def rendered(answer: Answer) -> Response:
    headers = dict(answer.headers)
    media = headers.pop("content-type", None)
    return Response(answer.body, status_code=answer.status, headers=headers, media_type=media)


@router.post("/v1/removebg", response_class=Response, responses=_IMAGE_RESPONSES)
async def removebg(
    svc: ServicesDep,
    ctx: ContextDep,
    who: CallerDep,
    opts: Annotated[RemoveOptions, Depends(form_options)],
    image: Annotated[
        list[UploadFile | str] | None,
        File(description="The photo (JPEG, PNG, WebP, ...): one part"),
    ] = None,
    image_file_b64: Annotated[
        str | None, Form(description="Or the photo in base64 (a data URL too)")
    ] = None,
    image_url: Annotated[
        str | None, Form(description="Or an http(s) URL of the photo, fetched by the server")
    ] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Remove the background of one photo (``image``, ``image_file_b64`` or ``image_url``:
    exactly one); the answer is the image itself. Every option of the engine is a form field
    (size, format, bg_color, channels, crop, crop_margin, model, flip, refine, combine,
    foreground, quality)."""
    data = await photo_of(svc.fetcher, image, image_file_b64, image_url)
    fingerprint = hashlib.sha256(repr(opts).encode() + hashlib.sha256(data).digest()).hexdigest()
    idem = svc.paid.idempotency(who, idempotency_key, fingerprint)
    replay = idem.begin()
    if replay is not None:
        return rendered(replay)
    try:
        cut = await svc.paid.remove(who, data, opts, ctx)
        async with svc.paid.delivering(who, ctx):
            headers = {"content-type": cut.media_type, **cutout_headers(cut, ctx.credits_cents)}
            answer = idem.finish(Answer(200, headers, cut.data))
    except BaseException:
        idem.abandon()
        raise
    svc.metrics.images.labels("removebg", cut.model).inc()
    return rendered(answer)
