"""Console users: email + password (argon2id), roles ``admin`` and ``member``, and which
applications a member belongs to. Console sessions are random tokens stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clearbg.errors import InvalidOptionError, NotFoundError, SignInError
from clearbg.store.models import Application, ConsoleSession, Membership, User

__all__ = [
    "ROLES",
    "add_member",
    "change_password",
    "create_user",
    "end_session",
    "find_user",
    "remove_member",
    "session_user",
    "set_active",
    "set_password",
    "sign_in",
    "start_session",
    "visible_applications",
]

ROLES: Final = ("admin", "member")
MIN_PASSWORD: Final = 8
_hasher = PasswordHasher()
# verified when the email is unknown, so a wrong email costs as long as a wrong password
_DUMMY_HASH: Final = _hasher.hash("not a password of anyone")


def _email(raw: str) -> str:
    email = raw.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 254:
        raise InvalidOptionError("email", f"{raw!r} is not an email address")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidOptionError("password", f"must have at least {MIN_PASSWORD} characters")


def create_user(db: Session, email: str, password: str, role: str = "member") -> User:
    if role not in ROLES:
        raise InvalidOptionError("role", f"must be one of {', '.join(ROLES)}")
    _check_password(password)
    address = _email(email)
    if db.scalar(select(User.id).where(User.email == address)) is not None:
        raise InvalidOptionError("email", f"a user {address} exists")
    user = User(email=address, password_hash=_hasher.hash(password), role=role)
    db.add(user)
    db.flush()
    return user


def find_user(db: Session, email: str) -> User:
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFoundError(f"no user {email!r}")
    return user


def sign_in(db: Session, email: str, password: str) -> User:
    """The user whose password this is, or SignInError (never says which part was wrong)."""
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise SignInError("wrong email or password") from None
    if user is None or not user.active:
        raise SignInError("wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = datetime.now(UTC)
    return user


def set_password(db: Session, user: User, password: str, keep_token: str | None = None) -> None:
    """A new password for ``user``; every console session of theirs ends except ``keep_token``
    (the one that made the change), so a stolen session or an old password stops working."""
    _check_password(password)
    user.password_hash = _hasher.hash(password)
    ended = delete(ConsoleSession).where(ConsoleSession.user_id == user.id)
    if keep_token is not None:
        ended = ended.where(ConsoleSession.token_hash != _token_hash(keep_token))
    db.execute(ended)


def change_password(db: Session, user_id: int, current: str, new: str, token: str) -> None:
    """The signed-in user's own change: the current password first (SignInError if wrong)."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFoundError("no such user")
    try:
        _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise SignInError("the current password is wrong") from None
    set_password(db, user, new, keep_token=token)


def set_active(db: Session, user: User, active: bool, by: User) -> None:
    """Deactivate (every session of theirs ends at once; sign-in is refused) or reactivate a
    user. An admin cannot deactivate themself, so a console keeps someone who can sign in."""
    if not active and user.id == by.id:
        raise InvalidOptionError("user", "you cannot deactivate yourself")
    user.active = active
    if not active:
        db.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Session, user: User, lifetime: timedelta) -> str:
    """A new session for ``user``; the token (for the cookie) is returned, its hash stored."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    db.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    db.add(
        ConsoleSession(token_hash=_token_hash(token), user_id=user.id, expires_at=now + lifetime)
    )
    return token


def session_user(db: Session, token: str) -> User | None:
    row = db.get(ConsoleSession, _token_hash(token))
    if row is None or row.expires_at <= datetime.now(UTC):
        return None
    user = db.get(User, row.user_id)
    return user if user is not None and user.active else None


def end_session(db: Session, token: str) -> None:
    db.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))


def visible_applications(db: Session, user_id: int, role: str) -> list[Application]:
    """Every application for an admin; a member's own ones otherwise."""
    query = select(Application).order_by(Application.name)
    if role != "admin":
        query = query.join(Membership, Membership.application_id == Application.id).where(
            Membership.user_id == user_id
        )
    return list(db.scalars(query))


def can_see(db: Session, user_id: int, role: str, app: Application) -> bool:
    return role == "admin" or db.get(Membership, (user_id, app.id)) is not None


def members(db: Session, app: Application) -> list[User]:
    query = (
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.application_id == app.id)
        .order_by(User.email)
    )
    return list(db.scalars(query))


def add_member(db: Session, app: Application, user: User) -> None:
    if db.get(Membership, (user.id, app.id)) is None:
        db.add(Membership(user_id=user.id, application_id=app.id))
        db.flush()


def remove_member(db: Session, app: Application, user: User) -> None:
    db.execute(
        delete(Membership).where(Membership.user_id == user.id, Membership.application_id == app.id)
    )
