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

Beside ``image`` the spec names no field; the gateway also takes the output options of
/v1/removebg (``size``, ``format``, ``bg_color``, ``channels``, ``crop``, ``crop_margin``; a bad
one is 400 ``invalid_option``) and passes them to the upstream. The console's playground uses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from clearbg.accounts import credits, keys
from clearbg.accounts.applications import GatewayConfig
from clearbg.accounts.directory import DirectoryBusyError, KeyInfo
from clearbg.api.deps import Services, ServicesDep, Window
from clearbg.engine import RemoveOptions
from clearbg.engine.imageio import Probe
from clearbg.errors import (
    AnonymousLimitError,
    AuthError,
    EmptyImageError,
    GatewayCreditsError,
    GatewayUnavailableError,
    ImageConflictError,
    InsufficientCreditsError,
    InvalidMultipartError,
    MissingApiKeyError,
    MissingAppKeyError,
    MissingImageError,
    ModelError,
    RateLimitedError,
    UnknownApplicationError,
    UpstreamError,
    UpstreamNotConfiguredError,
    WrongApplicationKeyError,
)
from clearbg.gateway import anonymous
from clearbg.gateway.inputs import parse_text
from clearbg.gateway.upstream import UpstreamResult, call_http_upstream
from clearbg.store.models import ApiKey

router = APIRouter(tags=["Monitor gateway"])

# optional fields beside ``image``: the output options of /v1/removebg, passed to the upstream
OUTPUT_FIELDS = ("size", "format", "bg_color", "channels", "crop", "crop_margin", "flip")

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/png": {}}, "description": "The upstream's image, as it came"}
}


@router.post("/api/v1/clearbg", response_class=Response, responses=_RESPONSES)
async def clearbg(
    request: Request,
    svc: ServicesDep,
    x_app_key: Annotated[str | None, Header(description="Application API key")] = None,
    x_api_key: Annotated[str | None, Header(description="End-user API key (billing)")] = None,
) -> Response:
    """Remove the background of one image: a file, an http(s) URL, base64 or a data URL."""
    peer = request.client.host if request.client else None
    ip = anonymous.client_ip(peer, request.headers.getlist("x-forwarded-for"), svc.trusted_proxies)
    ip_hash = anonymous.hash_ip(svc.ip_secret, ip)
    request.state.client_ip_hash = ip_hash
    if not x_app_key or not x_app_key.strip():
        raise MissingAppKeyError("send the application key in the X-App-Key header")
    gw = svc.settings.gateway
    try:
        app = await _read(svc, svc.directory.application, x_app_key)
    except UnknownApplicationError:
        # guessing application keys is throttled like any other client: per IP, by the setting
        _limit_headers(
            request, [_throttle(svc, f"gw:ip:unknown:{ip_hash}", None, gw.ip_per_minute)]
        )
        raise
    request.state.application_id = app.id
    windows = [_throttle(svc, f"gw:ip:{app.id}:{ip_hash}", app.ip_per_minute, gw.ip_per_minute)]
    _limit_headers(request, windows)

    if not app.enabled:
        raise GatewayUnavailableError(f"the ClearBG integration of {app.name!r} is disabled")
    if app.upstream == "none" or (app.upstream == "http" and not app.upstream_url):
        raise UpstreamNotConfiguredError(f"no upstream is configured for {app.name!r}")

    key = None
    if x_api_key is not None:
        key = await _authenticate(svc, app, x_api_key)
        request.state.api_key_id = key.id
        windows.append(_throttle(svc, f"gw:key:{key.id}", app.key_per_minute, gw.key_per_minute))
        _limit_headers(request, windows)
    elif app.anon_daily_limit <= 0:
        raise MissingApiKeyError(f"{app.name!r} takes no anonymous requests; send X-Api-Key")

    data, fields = await _read_image(request, svc)
    request.state.bytes_in = len(data)
    options = RemoveOptions.parse(  # bad options and bad input are refused
        size=fields.get("size"),
        format=fields.get("format"),
        bg_color=fields.get("bg_color"),
        channels=fields.get("channels"),
        crop=fields.get("crop"),
        crop_margin=fields.get("crop_margin"),
        flip=fields.get("flip"),
    )
    probe = svc.engine.probe(data)  # before anything is counted

    taken = _Reservation(
        app,
        key,
        cost=0 if key is None or key.unlimited else app.credit_cost_cents,
        reference=f"gw:{request.state.request_id}",
        ip_hash=ip_hash,
        day=anonymous.today(),
    )
    await anyio.to_thread.run_sync(_reserve, svc, taken)
    try:
        result = await _call_upstream(svc, app, probe, options, fields, request.state.request_id)
    except BaseException:
        with anyio.CancelScope(shield=True):  # a client that went away still gets its refund
            await anyio.to_thread.run_sync(_release, svc, taken)
        raise
    cost = taken.cost
    request.state.credits_cents = cost
    request.state.upstream_ms = result.upstream_ms
    headers = {
        "X-Credits-Charged": f"{credits.credits(cost):g}",
        # the time of the upstream call (engine or HTTP), so a client can see what the gateway adds
        "Server-Timing": f"upstream;dur={result.upstream_ms:.1f}",
    }
    return Response(result.data, media_type=result.media_type, headers=headers)


T = TypeVar("T")


async def _read(svc: Services, find: Callable[[str, bool], T], value: str) -> T:
    """A directory read: on the event loop when SQLite answers at once (microseconds), else
    through the pool in a worker thread."""
    if svc.directory.quick:
        try:
            return find(value, True)
        except DirectoryBusyError:
            pass
    return await anyio.to_thread.run_sync(find, value, False)


@dataclass(frozen=True)
class _Reservation:
    """What one request takes before the upstream runs, and gives back if it fails: a key's
    credits, or one of the day's anonymous images of its client IP."""

    app: GatewayConfig
    key: KeyInfo | None
    cost: int
    reference: str
    ip_hash: str
    day: str


def _reserve(svc: Services, r: _Reservation) -> None:
    """Take the image's credits (403 when short) or one of the day's anonymous images (429)."""
    app = r.app
    if r.key is not None:
        try:
            with svc.sessions.begin() as db:
                credits.charge(db, _stored(db, r.key), r.cost, r.reference)
        except InsufficientCreditsError as exc:
            raise GatewayCreditsError(exc.message) from exc
        return
    with svc.sessions.begin() as db:
        taken = anonymous.take(db, app.id, r.ip_hash, app.anon_daily_limit, r.day)
    if not taken:
        raise AnonymousLimitError(
            f"the anonymous limit of {app.anon_daily_limit} images a day is spent; "
            "send X-Api-Key or come back after 00:00 UTC",
            retry_after=anonymous.seconds_to_midnight(),
        )


def _release(svc: Services, r: _Reservation) -> None:
    """Give back what ``_reserve`` took: nothing delivered, nothing charged."""
    with svc.sessions.begin() as db:
        if r.key is not None:
            credits.refund(db, _stored(db, r.key), r.cost, f"refund:{r.reference}")
        else:
            anonymous.give_back(db, r.app.id, r.ip_hash, r.day)


def _stored(db: Session, key: KeyInfo) -> ApiKey:
    """The key's row, read in the transaction that changes its balance."""
    stored = db.get(ApiKey, key.id)
    if stored is None:  # keys are revoked, never deleted; a database edited by hand may differ
        raise AuthError("the API key is not valid")
    return stored


def _throttle(svc: Services, ident: str, own: int | None, default: int) -> Window:
    per_minute = default if own is None else own
    if per_minute <= 0:
        return Window(True, 0, 0, 0.0)
    window = svc.limits.take(ident, per_minute)
    return window


def _limit_headers(request: Request, windows: list[Window]) -> None:
    """The X-RateLimit-* headers of the tightest limit; 429 when any is over."""
    counted = [w for w in windows if w.limit > 0]
    if not counted:
        return
    tightest = min(counted, key=lambda w: (w.allowed, w.remaining))
    request.state.extra_headers = tightest.headers()
    if not tightest.allowed:
        raise RateLimitedError(
            f"more than {tightest.limit} requests per minute", retry_after=tightest.retry_after()
        )


async def _authenticate(svc: Services, app: GatewayConfig, raw: str) -> KeyInfo:
    try:
        key = await _read(svc, svc.directory.key, raw)
    except MissingApiKeyError as exc:  # an empty X-Api-Key header is a wrong key
        raise AuthError("the X-Api-Key is empty") from exc
    if key.application_id != app.id:
        raise WrongApplicationKeyError("the X-Api-Key belongs to another application")
    if keys.needs_touch(key):
        await anyio.to_thread.run_sync(_touch, svc, key)
    return key


def _touch(svc: Services, key: KeyInfo) -> None:
    with svc.sessions.begin() as db:
        keys.touch(db, key)


async def _read_image(request: Request, svc: Services) -> tuple[bytes, dict[str, str]]:
    """The bytes of the single ``image`` field (a file part, or text to decode or fetch), and
    the optional output fields of /v1/removebg (``size``, ``format``, ``bg_color``, ...)."""
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
        fields = {
            name: value.strip()
            for name in OUTPUT_FIELDS
            if isinstance(value := form.get(name), str) and value.strip()
        }
        parts = form.getlist("image")
        if not parts:
            raise MissingImageError("the multipart body has no field named image")
        if len(parts) > 1:
            kinds = {"file" if isinstance(p, UploadFile) else "text" for p in parts}
            what = "a file and a text" if len(kinds) == 2 else f"{len(parts)} {kinds.pop()}s"
            raise ImageConflictError(f"send one image field, not {what}")
        part = parts[0]
        if isinstance(part, UploadFile):
            data = await part.read()
            if not data:
                raise EmptyImageError("the image file is empty")
            return data, fields
    finally:
        await form.close()
    text = parse_text(part)
    if text.kind == "url":
        return await svc.fetcher.fetch(text.url), fields
    return text.data, fields


async def _call_upstream(
    svc: Services,
    app: GatewayConfig,
    probe: Probe,
    options: RemoveOptions,
    fields: dict[str, str],
    request_id: str,
) -> UpstreamResult:
    if app.upstream == "http" and app.upstream_url:
        gw = svc.settings.gateway
        return await call_http_upstream(
            svc.upstream_client,
            app.upstream_url,
            app.upstream_key,
            probe.data,
            timeout=gw.upstream_timeout,
            connect_timeout=gw.connect_timeout,
            request_id=request_id,
            fields=fields,
        )
    started = time.perf_counter()
    try:
        w, h = probe.size
        cut = await svc.slots.run(lambda: svc.engine.remove(probe, options), pixels=w * h)
    except ModelError as exc:
        raise UpstreamError(f"the local engine cannot work: {exc.message}") from exc
    svc.metrics.images.labels("gateway", cut.model).inc()
    return UpstreamResult(cut.data, cut.media_type, (time.perf_counter() - started) * 1000)
