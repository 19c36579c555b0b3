"""The playground: a photo through the application's gateway, signed by the server for the
signed-in user with a key they pick from a list (they never handle its secret), or anonymous
where the application allows it. The call is the gateway's own paid call
(``PaidCalls.gateway_remove``): charged, refunded and recorded in usage like an API call."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from clearbg.accounts.directory import KeyInfo
from clearbg.accounts.usage import PLAYGROUND
from clearbg.console.auth import ContextDep, ViewerDep, check_csrf
from clearbg.console.pages import key_status, load_app
from clearbg.console.render import page
from clearbg.engine import RemoveOptions
from clearbg.errors import EmptyImageError, InvalidMultipartError, MissingImageError, NotFoundError
from clearbg.gateway.inputs import parse_text
from clearbg.paid.context import CallContext
from clearbg.paid.service import PaidCalls
from clearbg.store.models import ApiKey

router = APIRouter(include_in_schema=False)

_OPTIONS = ("size", "format", "bg_color")


@dataclass(frozen=True)
class KeyChoice:
    prefix: str
    text: str
    empty: bool  # no credits left: the page says to top it up first


def _choices(keys: list[ApiKey]) -> list[KeyChoice]:
    choices = []
    for k in keys:
        if key_status(k) != "active":
            continue
        left = "unlimited" if k.unlimited else f"{k.balance_cents / 100:g} credits"
        label = f" ({k.label})" if k.label else ""
        empty = not k.unlimited and k.balance_cents <= 0
        choices.append(KeyChoice(k.prefix, f"{k.prefix}{label}: {left}", empty))
    return choices


@router.get("/console/apps/{app_id}/playground", response_class=HTMLResponse)
def playground(request: Request, ctx: ContextDep, who: ViewerDep, app_id: int) -> Response:
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
        keys = list(
            db.scalars(select(ApiKey).where(ApiKey.application_id == app.id).order_by(ApiKey.id))
        )
    return page(
        request,
        "playground.html",
        who,
        f"{app.name}: playground",
        section="apps",
        tab="/playground",
        app=app,
        choices=_choices(keys),
    )


def _paid(request: Request) -> PaidCalls:
    found: PaidCalls = request.app.state.services.paid
    return found


def _call(request: Request) -> CallContext:
    found: CallContext = request.state.call  # made by the API's middleware for every request
    return found


@router.post(PLAYGROUND, response_class=Response)
async def run(request: Request, ctx: ContextDep, who: ViewerDep, app_id: int) -> Response:
    """One cut-out for the signed-in user; errors answer problem+json (the page's script
    shows them)."""
    paid, call = _paid(request), _call(request)
    limit = int(ctx.settings.server.upload_limit_mb * 1024 * 1024)
    try:
        form = await request.form(max_files=1, max_fields=16, max_part_size=limit)
    except MultiPartException as exc:
        raise InvalidMultipartError(f"the form cannot be read: {exc.message}") from exc
    try:
        check_csrf(ctx, form, who.token)
        prefix = str(form.get("key") or "")
        with ctx.sessions() as db:
            app = load_app(db, who, app_id)
            signed = _key_info(db, app.id, prefix) if prefix else None
        peer = request.client.host if request.client else None
        caller = await paid.gateway_caller(app.app_key, None, peer, [], call, signed=signed)
        data = await _image(form, paid)
        options = RemoveOptions.from_fields(
            {k: v for k in _OPTIONS if isinstance(v := form.get(k), str) and v.strip()}
        )
    finally:
        await form.close()
    result = await paid.gateway_remove(caller, data, options, call)
    return Response(
        result.data,
        media_type=result.media_type,
        headers={"X-Credits-Charged": f"{call.credits_cents / 100:g}"},
    )


def _key_info(db: Session, app_id: int, prefix: str) -> KeyInfo:
    key = db.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.application_id != app_id:
        raise NotFoundError(f"no key {prefix!r} in this application")
    return KeyInfo(
        key.id,
        key.application_id,
        key.secret_hash,
        key.active,
        key.expires_at,
        key.unlimited,
        key.last_used_at,
    )


async def _image(form: FormData, paid: PaidCalls) -> bytes:
    part = form.get("image")
    if part is None or part == "":
        raise MissingImageError("choose a photo or paste its URL")
    if isinstance(part, UploadFile):
        data = await part.read()
        if not data:
            raise EmptyImageError("the photo is empty")
        return data
    text = parse_text(part)
    if text.kind == "url":
        return await paid.fetcher.fetch(text.url)
    return text.data
