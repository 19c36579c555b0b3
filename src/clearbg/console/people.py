"""Admin pages: the console's users (make, deactivate, reactivate: a deactivated user's
sessions end at once) and the audit log of who did what."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from clearbg.accounts import audit, users
from clearbg.console.auth import ContextDep, FormDep, ViewerDep
from clearbg.console.pages import load_app, text_field, whole_field
from clearbg.console.render import page, redirect
from clearbg.errors import NotFoundError
from clearbg.store.models import Application, Membership, User

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/users", response_class=HTMLResponse)
def list_users(request: Request, ctx: ContextDep, who: ViewerDep) -> Response:
    who.require_admin()
    with ctx.sessions() as db:
        names: dict[int, list[str]] = {}
        for user_id, name in db.execute(
            select(Membership.user_id, Application.name)
            .join(Application, Application.id == Membership.application_id)
            .order_by(Application.name)
        ):
            names.setdefault(user_id, []).append(name)
        rows = [(u, names.get(u.id, [])) for u in db.scalars(select(User).order_by(User.email))]
        apps = list(db.scalars(select(Application).order_by(Application.name)))
    return page(request, "users.html", who, "Users", section="users", rows=rows, apps=apps)


@router.post("/users")
def create_user(ctx: ContextDep, who: ViewerDep, form: FormDep) -> Response:
    who.require_admin()
    application_id = whole_field(form, "application_id")
    with ctx.sessions.begin() as db:
        user = users.create_user(
            db, text_field(form, "email"), str(form.get("password") or ""), text_field(form, "role")
        )
        audit.record(db, who.actor, "user.created", user.email, user.role)
        if application_id:
            app = load_app(db, who, application_id)
            users.add_member(db, app, user)
            audit.record(db, who.actor, "member.added", user.email, app.name, app.id)
    return redirect("/console/users?done=user_created")


@router.post("/users/{user_id}/active")
def set_active(ctx: ContextDep, who: ViewerDep, form: FormDep, user_id: int) -> Response:
    """``active=0`` deactivates (sessions end now, sign-in refused), ``active=1`` reactivates."""
    who.require_admin()
    active = form.get("active") == "1"
    with ctx.sessions.begin() as db:
        user, me = db.get(User, user_id), db.get(User, who.id)
        if user is None or me is None:
            raise NotFoundError(f"no user {user_id}")
        users.set_active(db, user, active, by=me)
        audit.record(
            db, who.actor, "user.reactivated" if active else "user.deactivated", user.email
        )
    return redirect(f"/console/users?done={'user_reactivated' if active else 'user_deactivated'}")


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    ctx: ContextDep,
    who: ViewerDep,
    app: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    """The newest events first: all of them, or one application's (``?app=<id>``; the
    form's "all" sends it empty)."""
    who.require_admin()
    app_id = int(app) if app.isdigit() else None
    with ctx.sessions() as db:
        events = audit.events(db, application_id=app_id)
        names = dict(db.execute(select(Application.id, Application.name)).all())
    return page(
        request,
        "audit.html",
        who,
        "Audit log",
        section="audit",
        events=events,
        names=names,
        actions=audit.ACTIONS,
        app_filter=app_id,
    )
