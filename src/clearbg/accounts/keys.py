"""Applications and API keys. A key is shown once; the store keeps its prefix and SHA-256.

A key reads ``cbg_<8 prefix chars>_<32 secret chars>``; the prefix (``cbg_XXXXXXXX``) finds the
row, the SHA-256 of the whole key is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clearbg.errors import AuthError, InvalidOptionError, MissingApiKeyError, NotFoundError
from clearbg.store.models import ApiKey, Application, LedgerEntry, utcnow

__all__ = [
    "authenticate",
    "create_application",
    "create_key",
    "hash_key",
    "rename_key",
    "revoke_key",
    "rotate_key",
    "usable",
    "verify",
]

_ALPHABET = string.ascii_letters + string.digits
PREFIX_LEN = 12  # "cbg_" + 8


def _token(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_application(db: Session, name: str, rate_per_minute: int | None = None) -> Application:
    if not name.strip():
        raise InvalidOptionError("name", "must not be empty")
    if db.scalar(select(Application).where(Application.name == name)) is not None:
        raise InvalidOptionError("name", f"an application named {name!r} exists")
    app = Application(name=name, app_key="app_" + _token(24), rate_per_minute=rate_per_minute)
    db.add(app)
    db.flush()
    return app


def find_application(db: Session, ref: str | int) -> Application:
    if isinstance(ref, int) or ref.isdigit():
        app = db.get(Application, int(ref))
    else:
        app = db.scalar(select(Application).where(Application.name == ref))
    if app is None:
        raise NotFoundError(f"no application {ref!r}")
    return app


def create_key(
    db: Session,
    app: Application,
    *,
    label: str = "",
    credits_cents: int = 0,
    unlimited: bool = False,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (shown to the user once, never stored)."""
    raw = f"cbg_{_token(8)}_{_token(32)}"
    key = ApiKey(
        application_id=app.id,
        prefix=raw[:PREFIX_LEN],
        secret_hash=hash_key(raw),
        label=label,
        unlimited=unlimited,
        expires_at=expires_at,
        balance_cents=credits_cents,
    )
    db.add(key)
    db.flush()
    if credits_cents:
        db.add(
            LedgerEntry(
                api_key_id=key.id,
                amount_cents=credits_cents,
                balance_after_cents=credits_cents,
                reason="topup",
                note="initial credits",
            )
        )
    return key, raw


class KeyFacts(Protocol):
    """What checking a key needs: the stored row (``ApiKey``) or a snapshot of it."""

    @property
    def id(self) -> int: ...
    @property
    def secret_hash(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def last_used_at(self) -> datetime | None: ...
    @property
    def previous_hash(self) -> str | None: ...
    @property
    def previous_until(self) -> datetime | None: ...


K = TypeVar("K", bound=KeyFacts)


def authenticate(db: Session, raw: str | None) -> ApiKey:
    """The active key for a presented secret, or AuthError (never says which part was wrong)."""
    if not raw:
        raise MissingApiKeyError("send your API key in the X-API-Key header")
    raw = raw.strip()
    return verify(db.scalar(select(ApiKey).where(ApiKey.prefix == raw[:PREFIX_LEN])), raw)


def verify(key: K | None, raw: str) -> K:
    """``key`` (found by the prefix of ``raw``) if ``raw`` is its secret and it is active and
    unexpired, else AuthError; the hash is compared in constant time even without a key."""
    presented = hash_key(raw)
    expected = key.secret_hash if key is not None else hash_key("")
    current = hmac.compare_digest(expected, presented)
    # the secret a rotation replaced, during its grace period (compared whether or not set)
    previous = key.previous_hash if key is not None and key.previous_hash else hash_key("")
    in_grace = hmac.compare_digest(previous, presented) and _in_grace(key)
    if key is None or not (current or in_grace):
        raise AuthError("the API key is not valid")
    return usable(key)


def usable(key: K) -> K:
    """``key`` if it is active and unexpired, else AuthError (for a key found by its secret,
    or chosen by a signed-in console user)."""
    if not key.active:
        raise AuthError("the API key has been revoked")
    if key.expires_at is not None and _aware(key.expires_at) <= datetime.now(UTC):
        raise AuthError("the API key has expired")
    return key


def find_key(db: Session, prefix: str) -> ApiKey:
    key = db.scalar(select(ApiKey).where(ApiKey.prefix == prefix[:PREFIX_LEN]))
    if key is None:
        raise NotFoundError(f"no key with prefix {prefix!r}")
    return key


def revoke_key(db: Session, prefix: str) -> ApiKey:
    key = find_key(db, prefix)
    key.active = False
    return key


def rename_key(key: ApiKey, label: str) -> None:
    key.label = label.strip()[:200]


def rotate_key(key: ApiKey, grace: timedelta) -> str:
    """A new secret for ``key`` (same prefix, balance, ledger and usage), returned once; the
    old secret keeps working for ``grace`` (zero: it stops at once)."""
    if not key.active:
        raise InvalidOptionError("key", "a revoked key cannot be rotated")
    if grace < timedelta(0):
        raise InvalidOptionError("grace", "must not be negative")
    raw = f"{key.prefix}_{_token(32)}"
    key.previous_hash = key.secret_hash if grace else None
    key.previous_until = utcnow() + grace if grace else None
    key.secret_hash = hash_key(raw)
    return raw


def _in_grace(key: KeyFacts | None) -> bool:
    return (
        key is not None
        and key.previous_until is not None
        and _aware(key.previous_until) > datetime.now(UTC)
    )


TOUCH_EVERY = timedelta(seconds=60)


def needs_touch(key: KeyFacts) -> bool:
    """Whether ``last used`` is worth a write (at most once a minute per key)."""
    return key.last_used_at is None or utcnow() - _aware(key.last_used_at) >= TOUCH_EVERY


def touch(db: Session, key: KeyFacts) -> None:
    db.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=utcnow()))


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def ensure_first_key(db: Session, credits_cents: int) -> str | None:
    """On a new database: a "default" application and one key, whose secret is returned once."""
    if db.scalar(select(Application.id).limit(1)) is not None:
        return None
    app = create_application(db, "default")
    _, raw = create_key(db, app, label="first key", credits_cents=credits_cents)
    return raw
