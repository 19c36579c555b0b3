"""An application's gateway settings: upstream, anonymous daily limit, throttles, credit cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from clearbg.errors import InvalidOptionError, UnknownApplicationError
from clearbg.store.models import Application

__all__ = ["UNSET", "UPSTREAMS", "GatewayConfig", "Unset", "find_by_app_key", "update_application"]

UPSTREAMS: Final = ("local", "http", "none")


class Unset:
    """The type of ``UNSET``: a setting the caller leaves alone."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


@dataclass(frozen=True)
class GatewayConfig:
    """A snapshot of one application's gateway settings, read once per request."""

    id: int
    name: str
    enabled: bool
    upstream: str
    upstream_url: str | None
    upstream_key: str | None
    anon_daily_limit: int
    ip_per_minute: int | None
    key_per_minute: int | None
    credit_cost_cents: int


def find_by_app_key(db: Session, app_key: str) -> Application:
    app = db.scalar(select(Application).where(Application.app_key == app_key.strip()))
    if app is None:
        raise UnknownApplicationError("no application matches the X-App-Key value")
    return app


def update_application(
    db: Session,
    app: Application,
    *,
    name: str | Unset = UNSET,
    rate_per_minute: int | Unset | None = UNSET,
    enabled: bool | Unset = UNSET,
    upstream: str | Unset = UNSET,
    upstream_url: str | Unset | None = UNSET,
    upstream_key: str | Unset | None = UNSET,
    anon_daily_limit: int | Unset = UNSET,
    ip_per_minute: int | Unset | None = UNSET,
    key_per_minute: int | Unset | None = UNSET,
    credit_cost_cents: int | Unset = UNSET,
    starting_credits_cents: int | Unset = UNSET,
) -> Application:
    """Change the given settings (``UNSET`` leaves one alone, ``None`` clears a nullable one)."""
    if not isinstance(name, Unset):
        if not name.strip():
            raise InvalidOptionError("name", "must not be empty")
        other = db.scalar(select(Application).where(Application.name == name))
        if other is not None and other.id != app.id:
            raise InvalidOptionError("name", f"an application named {name!r} exists")
        app.name = name
    if not isinstance(upstream, Unset):
        if upstream not in UPSTREAMS:
            raise InvalidOptionError("upstream", f"must be one of {', '.join(UPSTREAMS)}")
        app.upstream = upstream
    if not isinstance(upstream_url, Unset):
        if upstream_url:
            _check_url(upstream_url)
        app.upstream_url = upstream_url or None
    if not isinstance(upstream_key, Unset):
        app.upstream_key = upstream_key or None
    if not isinstance(enabled, Unset):
        app.gateway_enabled = enabled
    for field, value in (
        ("rate_per_minute", rate_per_minute),
        ("ip_per_minute", ip_per_minute),
        ("key_per_minute", key_per_minute),
    ):
        if not isinstance(value, Unset):
            if value is not None and value < 0:
                raise InvalidOptionError(field, "must not be negative")
            setattr(app, field, value)
    if not isinstance(anon_daily_limit, Unset):
        if anon_daily_limit < 0:
            raise InvalidOptionError("anon_daily", "must not be negative")
        app.anon_daily_limit = anon_daily_limit
    if not isinstance(credit_cost_cents, Unset):
        if credit_cost_cents < 0:
            raise InvalidOptionError("credit_cost", "must not be negative")
        app.credit_cost_cents = credit_cost_cents
    if not isinstance(starting_credits_cents, Unset):
        if starting_credits_cents < 0:
            raise InvalidOptionError("starting_credits", "must not be negative")
        app.starting_credits_cents = starting_credits_cents
    db.flush()
    return app


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidOptionError("upstream_url", f"not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidOptionError("upstream_url", "must be an http(s) URL")
