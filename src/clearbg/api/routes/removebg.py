"""``POST /v1/removebg``: one photo in, one cut-out out, charged only when delivered."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.responses import Response

from clearbg.accounts import credits
from clearbg.api.deps import CallerDep, ServicesDep
from clearbg.api.idempotency import Idempotency
from clearbg.engine import Cutout, RemoveOptions
from clearbg.errors import EmptyImageError, InvalidOptionError

router = APIRouter(tags=["remove background"])

_IMAGE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "description": "The cut-out",
    }
}


def form_options(
    size: Annotated[str | None, Form()] = None,
    format: Annotated[str | None, Form()] = None,
    bg_color: Annotated[str | None, Form()] = None,
    channels: Annotated[str | None, Form()] = None,
    crop: Annotated[str | None, Form()] = None,
    crop_margin: Annotated[str | None, Form()] = None,
    model: Annotated[str | None, Form()] = None,
    flip: Annotated[
        str | None, Form(description="true: also run the model on the mirrored photo (2x time)")
    ] = None,
) -> RemoveOptions:
    """The engine's options from the form fields of /v1/removebg and /v1/bulk."""
    return RemoveOptions.parse(
        model=model,
        size=size,
        format=format,
        bg_color=bg_color,
        channels=channels,
        crop=crop,
        crop_margin=crop_margin,
        flip=flip,
    )


async def read_upload(image: UploadFile | str) -> bytes:
    if isinstance(image, str):
        raise InvalidOptionError(
            "image",
            f"must be a file part, not text ({image[:40]!r}); in Node.js append a Blob "
            "(for example `await fs.openAsBlob(path)`), not a stream",
        )
    return await image.read()


def cost_cents(svc: ServicesDep, opts: RemoveOptions) -> int:
    c = svc.settings.credits
    return credits.cents(c.preview if opts.size == "preview" else c.full)


def cutout_headers(cut: Cutout, charged_cents: int) -> dict[str, str]:
    return {
        "X-Width": str(cut.width),
        "X-Height": str(cut.height),
        "X-Credits-Charged": f"{credits.credits(charged_cents):g}",
        "X-Foreground-Top": str(cut.foreground.top),
        "X-Foreground-Left": str(cut.foreground.left),
        "X-Foreground-Width": str(cut.foreground.width),
        "X-Foreground-Height": str(cut.foreground.height),
        "X-Model": cut.model,
        "X-Processing-Ms": str(round(cut.timings.get("total", 0.0) * 1000)),
    }


@router.post("/v1/removebg", response_class=Response, responses=_IMAGE_RESPONSES)
async def removebg(
    request: Request,
    svc: ServicesDep,
    who: CallerDep,
    image: Annotated[UploadFile | str, File(description="The photo (JPEG, PNG, WebP, ...)")],
    opts: Annotated[RemoveOptions, Depends(form_options)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Remove the background of one photo; the answer is the image itself."""
    data = await read_upload(image)
    if not data:
        raise EmptyImageError("the image field is empty")
    request.state.bytes_in = len(data)
    fingerprint = hashlib.sha256(repr(opts).encode() + hashlib.sha256(data).digest()).hexdigest()
    idem = Idempotency(svc, who.key, idempotency_key, fingerprint)
    replay = idem.begin()
    if replay is not None:
        return replay
    try:
        probe = svc.engine.probe(data)  # bad input is refused before any credit moves
        svc.engine.store.spec(opts.model or svc.settings.engine.default_model)
        cost = cost_cents(svc, opts)
        reference = f"req:{request.state.request_id}"
        with svc.sessions.begin() as db:
            credits.charge(db, who.key, cost, reference)
        try:
            w, h = probe.size
            cut = await svc.slots.run(lambda: svc.engine.remove(probe, opts), pixels=w * h)
        except BaseException:
            with svc.sessions.begin() as db:
                credits.refund(db, who.key, cost, f"refund:{reference}")
            raise
    except BaseException:
        idem.abandon()
        raise
    request.state.credits_cents = cost if not who.key.unlimited else 0
    svc.metrics.images.labels("removebg", cut.model).inc()
    headers = cutout_headers(cut, request.state.credits_cents)
    return idem.finish(Response(cut.data, media_type=cut.media_type, headers=headers))
