"""Console pages: sign-in, the user's account, applications, their gateway settings and
members (keys: ``apikeys.py``; users and the audit log: ``people.py``).

Every change is a POST of a form with its CSRF token, answered by a redirect (303) back to the
page, except a new or rotated key: its page shows the secret once and is never served again.
Every change is written to the audit log in the transaction that makes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from clearbg.accounts import applications, audit, credits, keys, users
from clearbg.accounts.applications import UNSET
from clearbg.console.auth import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    ContextDep,
    FormDep,
    Viewer,
    ViewerDep,
    check_csrf,
    new_nonce,
    viewer,
)
from clearbg.console.render import page, redirect
from clearbg.errors import InvalidOptionError, NotFoundError, SignInError, SignInRequiredError
from clearbg.store.models import ApiKey, Application, User

router = APIRouter(prefix="/console", include_in_schema=False)


def load_app(db: Session, who: Viewer, app_id: int) -> Application:
    """The application if this user may see it; 404 otherwise (whether it exists or not)."""
    app = db.get(Application, app_id)
    if app is None or not users.can_see(db, who.id, who.role, app):
        raise NotFoundError(f"no application {app_id}")
    return app


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def number_field(form: FormData, name: str, *, blank: float | None = None) -> float | None:
    raw = text_field(form, name)
    if not raw:
        return blank
    try:
        value = float(raw)
    except ValueError:
        raise InvalidOptionError(name, f"{raw!r} is not a number") from None
    if not 0 <= value <= 1e9:  # also NaN and infinity
        raise InvalidOptionError(name, "must be a number from 0 to 1,000,000,000")
    return value


def whole_field(form: FormData, name: str) -> int | None:
    value = number_field(form, name)
    if value is not None and value != int(value):
        raise InvalidOptionError(name, "must be a whole number")
    return None if value is None else int(value)


def _safe_next(target: str) -> str:
    return target if target.startswith("/console/") and not target.startswith("//") else ""


# sign-in ---------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return redirect("/console/apps")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: ContextDep, next: str = "") -> Response:
    try:
        viewer(request, ctx)
        return redirect(_safe_next(next) or "/console/apps")
    except SignInRequiredError:
        pass
    return _login_page(request, ctx, next, "", None, 200)


def _login_page(
    request: Request, ctx: ContextDep, next_: str, email: str, error: str | None, status: int
) -> Response:
    nonce = ctx.unsign(request, PRESESSION_COOKIE) or new_nonce()
    response = page(
        request,
        "login.html",
        None,
        "Sign in",
        status=status,
        csrf=ctx.csrf("pre:" + nonce),
        next=_safe_next(next_),
        email=email,
        error=error,
    )
    ctx.set_cookie(response, PRESESSION_COOKIE, nonce, 3600)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ctx: ContextDep) -> Response:
    ctx.throttle_sign_in(request.client.host if request.client else "unknown")
    form = await request.form(max_files=0, max_fields=8)
    nonce = ctx.unsign(request, PRESESSION_COOKIE)
    check_csrf(ctx, form, "pre:" + nonce if nonce else None)
    email, next_ = text_field(form, "email"), text_field(form, "next")
    ctx.throttle_sign_in("email:" + email.lower())  # guesses at one account from many IPs
    try:
        with ctx.sessions.begin() as db:
            user = users.sign_in(db, email, str(form.get("password") or ""))
            token = users.start_session(db, user, ctx.lifetime)
    except SignInError as exc:
        return _login_page(request, ctx, next_, email, exc.message, 401)
    response = redirect(_safe_next(next_) or "/console/apps")
    ctx.set_cookie(response, SESSION_COOKIE, token, int(ctx.lifetime.total_seconds()))
    response.delete_cookie(PRESESSION_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(ctx: ContextDep, who: ViewerDep, _: FormDep) -> Response:
    with ctx.sessions.begin() as db:
        users.end_session(db, who.token)
    response = redirect("/console/login?done=signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


# the signed-in user's own account --------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, who: ViewerDep) -> Response:
    return page(request, "account.html", who, "Your account", section="account")


@router.post("/account/password", response_class=HTMLResponse)
def change_password(request: Request, ctx: ContextDep, who: ViewerDep, form: FormDep) -> Response:
    # guesses at the current password count against the same limit as sign-in guesses
    ctx.throttle_sign_in("email:" + who.email.lower())
    new, again = str(form.get("new_password") or ""), str(form.get("new_password_again") or "")
    try:
        if new != again:
            raise InvalidOptionError("new_password", "the two new passwords differ")
        with ctx.sessions.begin() as db:
            users.change_password(db, who.id, str(form.get("password") or ""), new, who.token)
    except (SignInError, InvalidOptionError) as exc:
        return page(
            request, "account.html", who, "Your account", 400, section="account", error=exc.message
        )
    return redirect("/console/account?done=password_changed")


# applications ----------------------------------------------------------------------------


@router.get("/apps", response_class=HTMLResponse)
def list_apps(request: Request, ctx: ContextDep, who: ViewerDep) -> Response:
    with ctx.sessions() as db:
        apps = users.visible_applications(db, who.id, who.role)
        counts = dict(
            db.execute(
                select(ApiKey.application_id, func.count())
                .where(ApiKey.active)
                .group_by(ApiKey.application_id)
            ).all()
        )
    return page(
        request, "apps.html", who, "Applications", section="apps", apps=apps, key_counts=counts
    )


@router.post("/apps")
def create_app(ctx: ContextDep, who: ViewerDep, form: FormDep) -> Response:
    who.require_admin()
    with ctx.sessions.begin() as db:
        app = keys.create_application(db, text_field(form, "name"))
        audit.record(db, who.actor, "app.created", app.name, application_id=app.id)
    return redirect(f"/console/apps/{app.id}?done=app_created")


def key_status(key: ApiKey) -> str:
    if not key.active:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"


def app_page(
    request: Request, ctx: ContextDep, who: Viewer, app_id: int, created: str | None = None
) -> Response:
    """The application's overview; ``created``: a new (or rotated) key's secret, shown once."""
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
        app_keys = list(
            db.scalars(select(ApiKey).where(ApiKey.application_id == app.id).order_by(ApiKey.id))
        )
        members = users.members(db, app)
    gw = ctx.settings.gateway
    return page(
        request,
        "app.html",
        who,
        app.name,
        status=201 if created else 200,
        section="apps",
        tab="/",
        app=app,
        keys=app_keys,
        members=members,
        created=created,
        key_status=key_status,
        now=datetime.now(UTC),
        defaults={"ip": gw.ip_per_minute, "key": gw.key_per_minute},
    )


@router.get("/apps/{app_id}", response_class=HTMLResponse)
def show_app(request: Request, ctx: ContextDep, who: ViewerDep, app_id: int) -> Response:
    return app_page(request, ctx, who, app_id)


@router.post("/apps/{app_id}/settings")
def save_settings(ctx: ContextDep, who: ViewerDep, form: FormDep, app_id: int) -> Response:
    who.require_admin()
    cost = number_field(form, "credit_cost", blank=0.0)
    starting = number_field(form, "starting_credits", blank=0.0)
    upstream_key = text_field(form, "upstream_key")
    with ctx.sessions.begin() as db:
        app = load_app(db, who, app_id)
        before = _settings_of(app)
        applications.update_application(
            db,
            app,
            name=text_field(form, "name"),
            enabled=form.get("gateway_enabled") == "1",
            upstream=text_field(form, "upstream") or "local",
            upstream_url=text_field(form, "upstream_url") or None,
            upstream_key=upstream_key or UNSET,  # empty keeps the key that is set
            anon_daily_limit=whole_field(form, "anon_daily_limit") or 0,
            ip_per_minute=whole_field(form, "ip_per_minute"),
            key_per_minute=whole_field(form, "key_per_minute"),
            credit_cost_cents=credits.cents(cost or 0.0),
            starting_credits_cents=credits.cents(starting or 0.0),
        )
        after = _settings_of(app)
        changed = "; ".join(f"{k}: {before[k]} -> {v}" for k, v in after.items() if before[k] != v)
        if changed:
            audit.record(db, who.actor, "settings.changed", app.name, changed, app.id)
    return redirect(f"/console/apps/{app_id}?done=settings_saved")


def _settings_of(app: Application) -> dict[str, str]:
    """The settings as the audit log shows them (the upstream key only as set or not)."""
    return {
        "name": app.name,
        "enabled": str(app.gateway_enabled),
        "upstream": app.upstream,
        "upstream_url": app.upstream_url or "",
        "upstream_key": "set" if app.upstream_key else "not set",
        "anonymous_per_day": str(app.anon_daily_limit),
        "ip_per_minute": str(app.ip_per_minute),
        "key_per_minute": str(app.key_per_minute),
        "credits_per_image": f"{app.credit_cost_cents / 100:g}",
        "starting_credits": f"{app.starting_credits_cents / 100:g}",
    }


@router.post("/apps/{app_id}/members")
def add_member(ctx: ContextDep, who: ViewerDep, form: FormDep, app_id: int) -> Response:
    who.require_admin()
    with ctx.sessions.begin() as db:
        app, user = load_app(db, who, app_id), users.find_user(db, text_field(form, "email"))
        users.add_member(db, app, user)
        audit.record(db, who.actor, "member.added", user.email, app.name, app.id)
    return redirect(f"/console/apps/{app_id}?done=member_added")


@router.post("/apps/{app_id}/members/{user_id}/remove")
def remove_member(
    ctx: ContextDep, who: ViewerDep, _: FormDep, app_id: int, user_id: int
) -> Response:
    who.require_admin()
    with ctx.sessions.begin() as db:
        user = db.get(User, user_id)
        if user is None:
            raise NotFoundError(f"no user {user_id}")
        app = load_app(db, who, app_id)
        users.remove_member(db, app, user)
        audit.record(db, who.actor, "member.removed", user.email, app.name, app.id)
    return redirect(f"/console/apps/{app_id}?done=member_removed")
