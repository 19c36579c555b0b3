"""Console pages of an application's end-user keys: make, rename, rotate (the new secret shown
once, the old one valid for a grace period), revoke, top up, and each key's credit history
from the ledger with what every row refers to (a request, or a bulk job's image)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from clearbg.accounts import audit, credits, keys, ledger
from clearbg.console.auth import ContextDep, FormDep, ViewerDep
from clearbg.console.pages import app_page, key_status, load_app, number_field, text_field
from clearbg.console.render import page, redirect
from clearbg.errors import InvalidOptionError, NotFoundError
from clearbg.store.models import ApiKey, Application

router = APIRouter(prefix="/console/apps/{app_id}/keys", include_in_schema=False)

# the grace periods a rotation offers, in hours: how long the old secret keeps working
GRACE_HOURS: Final = (0, 1, 24, 24 * 7)


def _own_key(db: Session, app: Application, prefix: str) -> ApiKey:
    key = keys.find_key(db, prefix)
    if key.application_id != app.id:
        raise NotFoundError(f"no key with prefix {prefix!r}")
    return key


@router.post("", response_class=HTMLResponse)
def create_key(
    request: Request, ctx: ContextDep, who: ViewerDep, form: FormDep, app_id: int
) -> Response:
    """A new key with the credits given (admins), else the application's starting credits:
    for every key an admin makes, for a member's first key in the application only (so a
    member cannot mint credits by making keys)."""
    days = number_field(form, "expires_days")
    amount = number_field(form, "credits")
    unlimited = form.get("unlimited") == "1"
    if not who.is_admin and (amount is not None or unlimited):
        who.require_admin()  # members make keys; only an admin chooses their credits
    with ctx.sessions.begin() as db:
        app = load_app(db, who, app_id)
        given = app.starting_credits_cents if amount is None else credits.cents(amount)
        if not who.is_admin and audit.done_before(db, who.id, "key.created", app.id):
            given = 0
        key, raw = keys.create_key(
            db,
            app,
            label=text_field(form, "label")[:200],
            credits_cents=0 if unlimited else given,
            unlimited=unlimited,
            expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
        )
        what = "unlimited" if unlimited else f"{credits.credits(key.balance_cents):g} credits"
        audit.record(db, who.actor, "key.created", key.prefix, what, app.id)
    return app_page(request, ctx, who, app_id, created=raw)


@router.get("")
def keys_page(app_id: int) -> Response:
    """Where the page that showed a new key lives; asked for again, it no longer shows it."""
    return redirect(f"/console/apps/{app_id}")


@router.post("/{prefix}/revoke")
def revoke_key(ctx: ContextDep, who: ViewerDep, _: FormDep, app_id: int, prefix: str) -> Response:
    with ctx.sessions.begin() as db:
        app = load_app(db, who, app_id)
        key = _own_key(db, app, prefix)
        key.active = False
        audit.record(db, who.actor, "key.revoked", key.prefix, key.label, app.id)
    return redirect(f"/console/apps/{app_id}?done=key_revoked")


@router.post("/{prefix}/credits")
def top_up(ctx: ContextDep, who: ViewerDep, form: FormDep, app_id: int, prefix: str) -> Response:
    who.require_admin()
    amount = number_field(form, "amount") or 0.0
    with ctx.sessions.begin() as db:
        app = load_app(db, who, app_id)
        key = _own_key(db, app, prefix)
        credits.add_credits(db, key, credits.cents(amount), f"console: {who.email}")
        audit.record(db, who.actor, "credits.added", key.prefix, f"{amount:g} credits", app.id)
    return redirect(f"/console/apps/{app_id}?done=credits_added")


@router.post("/{prefix}/rename")
def rename_key(
    ctx: ContextDep, who: ViewerDep, form: FormDep, app_id: int, prefix: str
) -> Response:
    with ctx.sessions.begin() as db:
        app = load_app(db, who, app_id)
        key = _own_key(db, app, prefix)
        old = key.label
        keys.rename_key(key, text_field(form, "label"))
        audit.record(db, who.actor, "key.renamed", key.prefix, f"{old!r} -> {key.label!r}", app.id)
    return redirect(f"/console/apps/{app_id}?done=key_renamed")


@router.post("/{prefix}/rotate", response_class=HTMLResponse)
def rotate_key(
    request: Request, ctx: ContextDep, who: ViewerDep, form: FormDep, app_id: int, prefix: str
) -> Response:
    hours = number_field(form, "grace_hours", blank=0.0) or 0.0
    if hours not in GRACE_HOURS:
        raise InvalidOptionError("grace_hours", f"must be one of {GRACE_HOURS}")
    with ctx.sessions.begin() as db:
        app = load_app(db, who, app_id)
        key = _own_key(db, app, prefix)
        raw = keys.rotate_key(key, timedelta(hours=hours))
        grace = f"old secret valid for {hours:g} h" if hours else "old secret stopped at once"
        audit.record(db, who.actor, "key.rotated", key.prefix, grace, app.id)
    return app_page(request, ctx, who, app_id, created=raw)


@router.get("/{prefix}", response_class=HTMLResponse)
def key_history(
    request: Request, ctx: ContextDep, who: ViewerDep, app_id: int, prefix: str
) -> Response:
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
        key = _own_key(db, app, prefix)
        lines = ledger.history(db, key.id)
    return page(
        request,
        "key.html",
        who,
        f"{app.name}: key {key.prefix}",
        section="apps",
        tab="/",
        app=app,
        key=key,
        state=key_status(key),
        lines=lines,
    )
