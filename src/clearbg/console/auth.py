"""Who is looking at a console page: the session cookie, CSRF tokens and the sign-in throttle.

The session cookie carries a random token signed with the console secret (itsdangerous); the
store keeps the token's SHA-256 (``gateway.users``), so signing out ends the session for good.
Every form carries a CSRF token: an HMAC of the session token (or, on the sign-in form, of a
signed pre-session nonce), checked on every POST. Cookies are HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, Signer
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData

from clearbg.accounts import users
from clearbg.errors import CsrfError, ForbiddenError, RateLimitedError, SignInRequiredError
from clearbg.settings import Settings
from clearbg.store.models import User

SESSION_COOKIE: Final = "clearbg_session"
PRESESSION_COOKIE: Final = "clearbg_presession"
CSRF_FIELD: Final = "csrf_token"
PATH: Final = "/console"


@dataclass
class ConsoleContext:
    """What the console's pages need, built once by ``create_app``."""

    settings: Settings
    sessions: sessionmaker[Session]
    secret: bytes
    signer: Signer
    limiter: MovingWindowRateLimiter

    @classmethod
    def build(
        cls, settings: Settings, sessions: sessionmaker[Session], secret: str
    ) -> ConsoleContext:
        return cls(
            settings=settings,
            sessions=sessions,
            secret=secret.encode(),
            signer=Signer(secret, salt="clearbg.console.session"),
            limiter=MovingWindowRateLimiter(storage_from_string(settings.limits.storage_url)),
        )

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.console.session_hours)

    def csrf(self, base: str) -> str:
        return hmac.new(self.secret, b"csrf:" + base.encode(), hashlib.sha256).hexdigest()

    def set_cookie(self, response: Response, name: str, token: str, max_age: int) -> None:
        response.set_cookie(
            name,
            self.signer.sign(token).decode(),
            max_age=max_age,
            path=PATH,
            httponly=True,
            samesite="lax",
            secure=self.settings.console.secure_cookie,
        )

    def unsign(self, request: Request, name: str) -> str | None:
        raw = request.cookies.get(name)
        if not raw:
            return None
        try:
            return self.signer.unsign(raw).decode()
        except BadSignature:
            return None

    def throttle_sign_in(self, client: str) -> None:
        item = RateLimitItemPerMinute(self.settings.console.sign_in_per_minute)
        if not self.limiter.hit(item, "console:sign-in", client):
            reset, _ = self.limiter.get_window_stats(item, "console:sign-in", client)
            raise RateLimitedError(
                "too many sign-in attempts; wait a minute and try again",
                retry_after=max(1, math.ceil(reset - time.time())),
            )


def context(request: Request) -> ConsoleContext:
    found: ConsoleContext = request.app.state.console
    return found


ContextDep = Annotated[ConsoleContext, Depends(context)]


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of this request, and the CSRF token their forms carry."""

    id: int
    email: str
    role: str
    token: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> tuple[int, str]:
        """Who the audit log names for what this user does."""
        return self.id, self.email

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ForbiddenError("only an admin can do this")


def viewer(request: Request, ctx: ContextDep) -> Viewer:
    """The signed-in user; otherwise SignInRequiredError (the console redirects to sign-in)."""
    token = ctx.unsign(request, SESSION_COOKIE)
    user: User | None = None
    if token:
        with ctx.sessions() as db:
            user = users.session_user(db, token)
    if user is None or token is None:
        raise SignInRequiredError("sign in to see this page")
    return Viewer(user.id, user.email, user.role, token, ctx.csrf(token))


ViewerDep = Annotated[Viewer, Depends(viewer)]


def check_csrf(ctx: ConsoleContext, form: FormData, base: str | None) -> None:
    sent = form.get(CSRF_FIELD)
    if base is None or not isinstance(sent, str) or not sent:
        raise CsrfError("the form came without its security token; reload the page and retry")
    if not hmac.compare_digest(sent, ctx.csrf(base)):
        raise CsrfError("the form's security token does not match; reload the page and retry")


async def checked_form(request: Request, ctx: ContextDep, who: ViewerDep) -> FormData:
    """The posted form of a signed-in user, after its CSRF token is checked."""
    form = await request.form(max_files=0, max_fields=64)
    check_csrf(ctx, form, who.token)
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def new_nonce() -> str:
    return secrets.token_urlsafe(24)
