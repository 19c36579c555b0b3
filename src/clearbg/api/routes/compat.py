"""remove.bg's API v1.0 at ``/v1.0/removebg`` and ``/v1.0/account``, so code written for
remove.bg works by changing its base URL. A thin translation over the same paid call as
/v1/removebg (``PaidCalls.remove``: one charging path); errors in remove.bg's shape,
``{"errors": [{"title", "code", "detail"}]}``, with its statuses (a bad key is 403), on these
paths only. The fields and what ClearBG does with each: docs/removebg-compat.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from clearbg.api.compat_fields import Translated, translate
from clearbg.api.deps import ContextDep, Services, ServicesDep
from clearbg.api.images import photo_of
from clearbg.api.problems import problem_body
from clearbg.api.routes.removebg import cutout_headers, rendered
from clearbg.engine import Cutout
from clearbg.engine.backdrop import compose_over
from clearbg.engine.compose import Box
from clearbg.engine.imageio import MEDIA_TYPES, Pixels, decode
from clearbg.errors import (
    AuthError,
    ClearbgError,
    InvalidMultipartError,
    RetryLaterError,
)
from clearbg.paid.context import CallContext
from clearbg.paid.idempotency import Answer
from clearbg.paid.service import Caller

router = APIRouter(prefix="/v1.0", tags=["remove.bg compatible"])

_IMAGE_FIELDS = ("image_file", "image_file_b64", "image_url")


def _errors(ctx: CallContext, exc: ClearbgError) -> JSONResponse:
    """remove.bg's error shape; a bad or missing key is its 403."""
    status = 403 if isinstance(exc, AuthError) else exc.status
    ctx.error_code = exc.code
    title = problem_body(status, exc.code, exc.message, ctx.request_id)["title"]
    headers = dict(ctx.headers)
    if isinstance(exc, RetryLaterError):
        headers["Retry-After"] = str(exc.retry_after)
    body = {"errors": [{"title": title, "code": exc.code, "detail": exc.message}]}
    return JSONResponse(body, status_code=status, headers=headers)


async def _answered(ctx: CallContext, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except ClearbgError as exc:
        return _errors(ctx, exc)


async def _caller(svc: Services, ctx: CallContext, key: str | None) -> Caller:
    return await anyio.to_thread.run_sync(svc.paid.authenticate, key, ctx)


async def _fields(request: Request, limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """A form (multipart or urlencoded) or a JSON body: text fields, and file parts' bytes;
    a part may be twice the upload limit (a photo in base64 is a third larger)."""
    if request.headers.get("content-type", "").lower().startswith("application/json"):
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidMultipartError("the JSON body cannot be read") from exc
        if not isinstance(body, dict):
            raise InvalidMultipartError("the JSON body must be an object of fields")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}, {}
    try:
        form = await request.form(max_part_size=2 * limit)
    except (MultiPartException, StarletteHTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", "")
        raise InvalidMultipartError(f"the form cannot be read: {detail}") from exc
    texts: dict[str, str] = {}
    files: dict[str, bytes] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                texts[name] = value
    finally:
        await form.close()
    return texts, files


async def _background(
    svc: Services, texts: dict[str, str], files: dict[str, bytes]
) -> Pixels | None:
    """The background photo's pixels (``bg_image_file`` or ``bg_image_url``), or None."""
    part, url = files.get("bg_image_file"), texts.get("bg_image_url")
    if part is None and not url:
        return None
    names = ("bg_image_file", "bg_image_file_b64", "bg_image_url")
    data = await photo_of(svc.fetcher, part, None, url or None, names)
    probe = svc.engine.probe(data)
    return await anyio.to_thread.run_sync(decode, probe)


def _json_answer(box: Box, data: bytes) -> bytes:
    return json.dumps(
        {
            "data": {
                "result_b64": base64.b64encode(data).decode(),
                "foreground_top": box.top,
                "foreground_left": box.left,
                "foreground_width": box.width,
                "foreground_height": box.height,
            }
        }
    ).encode()


@router.post("/removebg", response_class=Response)
async def removebg(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    x_api_key: Annotated[str | None, Header()] = None,
    accept: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """remove.bg's ``POST /v1.0/removebg``: ``image_file``, ``image_file_b64`` or
    ``image_url``; the image, or ``{"data": {"result_b64", ...}}`` for
    ``Accept: application/json``."""

    async def work() -> Response:
        who = await _caller(svc, ctx, x_api_key)
        texts, files = await _fields(
            request, int(svc.settings.server.upload_limit_mb * 1024 * 1024)
        )
        data = await photo_of(
            svc.fetcher,
            files.get("image_file"),
            texts.get("image_file_b64") or None,
            texts.get("image_url") or None,
            _IMAGE_FIELDS,
        )
        background = await _background(svc, texts, files)
        asked = translate(texts, background is not None, svc.engine.probe(data).size)
        wants_json = "application/json" in (accept or "").lower()
        fingerprint = hashlib.sha256(
            repr((asked, wants_json, sorted(texts.items()))).encode()
            + hashlib.sha256(data).digest()
            + hashlib.sha256(files.get("bg_image_file", b"")).digest()
        ).hexdigest()
        idem = svc.paid.idempotency(who, idempotency_key, fingerprint)
        replay = idem.begin()
        if replay is not None:
            return rendered(replay)
        try:
            cut = await svc.paid.remove(who, data, asked.options, ctx)
            async with svc.paid.delivering(who, ctx):
                answer = idem.finish(await _answer(cut, asked, background, wants_json, ctx))
        except BaseException:
            idem.abandon()
            raise
        svc.metrics.images.labels("removebg-v1.0", cut.model).inc()
        return rendered(answer)

    return await _answered(ctx, work)


async def _answer(
    cut: Cutout, asked: Translated, background: Pixels | None, wants_json: bool, ctx: CallContext
) -> Answer:
    data, media, width, height = cut.data, cut.media_type, cut.width, cut.height
    box = cut.foreground
    if asked.composed:  # the subject may have moved: its box is read where it now lies
        data, width, height, box = await anyio.to_thread.run_sync(
            compose_over, cut.data, asked.placement, background, asked.bg_color, asked.format
        )
        media = MEDIA_TYPES[asked.format]
    headers = cutout_headers(cut, ctx.credits_cents, box)
    headers.update({"X-Width": str(width), "X-Height": str(height), "X-Type": "other"})
    if wants_json:
        return Answer(200, {"content-type": "application/json", **headers}, _json_answer(box, data))
    return Answer(200, {"content-type": media, **headers}, data)


@router.get("/account")
async def account(
    svc: ServicesDep, ctx: ContextDep, x_api_key: Annotated[str | None, Header()] = None
) -> Response:
    """remove.bg's ``GET /v1.0/account``: the key's credits (all of them pay-as-you-go)."""

    async def work() -> Response:
        who = await _caller(svc, ctx, x_api_key)
        total = who.key.balance_cents / 100
        body = {
            "data": {
                "attributes": {
                    "credits": {"total": total, "subscription": 0, "payg": total, "enterprise": 0},
                    "api": {"free_calls": 0, "sizes": "all"},
                }
            }
        }
        return JSONResponse(body, headers=dict(ctx.headers))

    return await _answered(ctx, work)
