"""``/admin/...``: the JSON admin API (applications, keys, credits, usage).

Protected by ``Authorization: Bearer <CLEARBG_ADMIN__TOKEN>``; with no token configured the
whole admin API answers 404, as if it did not exist. A key's secret is in the answer that
creates it and never again; an application's upstream key is never shown (only whether it is set).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clearbg.accounts import applications, audit, credits, keys
from clearbg.accounts.applications import UNSET
from clearbg.accounts.usage import UsageRow, summarize
from clearbg.api.deps import ServicesDep
from clearbg.errors import AdminAuthError, InvalidOptionError, NotFoundError
from clearbg.store.models import ApiKey, Application


def admin_auth(svc: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> None:
    token = svc.settings.admin.token
    if not token:
        raise NotFoundError("not found")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), token.encode()
    ):
        raise AdminAuthError("send the admin token as Authorization: Bearer <token>")


ACTOR = "admin API"  # who the audit log names for changes made here
router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_auth)])


class ApplicationPublic(BaseModel):
    id: int
    name: str
    app_key: str
    rate_per_minute: int | None
    gateway_enabled: bool
    upstream: str
    upstream_url: str | None
    upstream_key_set: bool
    anon_daily_limit: int
    ip_per_minute: int | None
    key_per_minute: int | None
    credit_cost: float
    created_at: datetime

    @classmethod
    def of(cls, app: Application) -> ApplicationPublic:
        return cls(
            id=app.id,
            name=app.name,
            app_key=app.app_key,
            rate_per_minute=app.rate_per_minute,
            gateway_enabled=app.gateway_enabled,
            upstream=app.upstream,
            upstream_url=app.upstream_url,
            upstream_key_set=bool(app.upstream_key),
            anon_daily_limit=app.anon_daily_limit,
            ip_per_minute=app.ip_per_minute,
            key_per_minute=app.key_per_minute,
            credit_cost=credits.credits(app.credit_cost_cents),
            created_at=app.created_at,
        )


class ApplicationPatch(BaseModel):
    """Only the fields sent change; ``null`` clears a nullable one (back to the setting)."""

    name: str | None = None
    rate_per_minute: int | None = Field(default=None, ge=0)
    gateway_enabled: bool | None = None
    upstream: str | None = None
    upstream_url: str | None = None
    upstream_key: str | None = None
    anon_daily_limit: int | None = Field(default=None, ge=0)
    ip_per_minute: int | None = Field(default=None, ge=0)
    key_per_minute: int | None = Field(default=None, ge=0)
    credit_cost: float | None = Field(default=None, ge=0)


class ApplicationCreate(ApplicationPatch):
    name: str


class KeyCreate(BaseModel):
    label: str = ""
    credits: float = Field(default=0.0, ge=0)
    unlimited: bool = False
    expires_days: float | None = Field(default=None, gt=0)


class KeyPublic(BaseModel):
    prefix: str
    application_id: int
    label: str
    active: bool
    unlimited: bool
    credits: float
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        return cls(
            prefix=key.prefix,
            application_id=key.application_id,
            label=key.label,
            active=key.active,
            unlimited=key.unlimited,
            credits=credits.credits(key.balance_cents),
            expires_at=key.expires_at,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
        )


class KeyCreated(KeyPublic):
    secret: str = Field(description="the whole key; shown only in this answer")


class TopUp(BaseModel):
    amount: float = Field(gt=0)
    note: str = ""


class UsagePublic(BaseModel):
    day: str | None
    application_id: int | None
    api_key: str | None
    requests: int
    images: int
    errors: dict[str, int]
    statuses: dict[str, int]
    p50_ms: float
    p95_ms: float
    upstream_p50_ms: float | None
    upstream_p95_ms: float | None
    credits: float
    bytes_in: int
    bytes_out: int

    @classmethod
    def of(cls, row: UsageRow) -> UsagePublic:
        return cls(**row.__dict__)


def _patch(db: Session, app: Application, body: ApplicationPatch) -> None:
    sent = body.model_fields_set
    if "name" in sent and body.name is None:
        raise InvalidOptionError("name", "must not be null")
    if "upstream" in sent and body.upstream is None:
        raise InvalidOptionError("upstream", "must be local, http or none")
    applications.update_application(
        db,
        app,
        name=UNSET if body.name is None else body.name,
        rate_per_minute=body.rate_per_minute if "rate_per_minute" in sent else UNSET,
        enabled=UNSET if body.gateway_enabled is None else body.gateway_enabled,
        upstream=UNSET if body.upstream is None else body.upstream,
        upstream_url=body.upstream_url if "upstream_url" in sent else UNSET,
        upstream_key=body.upstream_key if "upstream_key" in sent else UNSET,
        anon_daily_limit=UNSET if body.anon_daily_limit is None else body.anon_daily_limit,
        ip_per_minute=body.ip_per_minute if "ip_per_minute" in sent else UNSET,
        key_per_minute=body.key_per_minute if "key_per_minute" in sent else UNSET,
        credit_cost_cents=UNSET if body.credit_cost is None else credits.cents(body.credit_cost),
    )


@router.get("/applications")
def list_applications(svc: ServicesDep) -> list[ApplicationPublic]:
    with svc.sessions() as db:
        return [
            ApplicationPublic.of(a)
            for a in db.scalars(select(Application).order_by(Application.id))
        ]


@router.post("/applications", status_code=201)
def create_application(svc: ServicesDep, body: ApplicationCreate) -> ApplicationPublic:
    with svc.sessions.begin() as db:
        app = keys.create_application(db, body.name)
        _patch(db, app, body)
        audit.record(db, ACTOR, "app.created", app.name, application_id=app.id)
        return ApplicationPublic.of(app)


@router.get("/applications/{ref}")
def get_application(svc: ServicesDep, ref: str) -> ApplicationPublic:
    with svc.sessions() as db:
        return ApplicationPublic.of(keys.find_application(db, ref))


@router.patch("/applications/{ref}")
def patch_application(svc: ServicesDep, ref: str, body: ApplicationPatch) -> ApplicationPublic:
    with svc.sessions.begin() as db:
        app = keys.find_application(db, ref)
        _patch(db, app, body)
        changed = ", ".join(sorted(body.model_fields_set))  # names only: never a key's value
        audit.record(db, ACTOR, "settings.changed", app.name, changed, app.id)
        return ApplicationPublic.of(app)


@router.post("/applications/{ref}/keys", status_code=201)
def create_key(svc: ServicesDep, ref: str, body: KeyCreate) -> KeyCreated:
    expires = datetime.now(UTC) + timedelta(days=body.expires_days) if body.expires_days else None
    with svc.sessions.begin() as db:
        app = keys.find_application(db, ref)
        key, raw = keys.create_key(
            db,
            app,
            label=body.label,
            credits_cents=credits.cents(body.credits),
            unlimited=body.unlimited,
            expires_at=expires,
        )
        what = "unlimited" if key.unlimited else f"{body.credits:g} credits"
        audit.record(db, ACTOR, "key.created", key.prefix, what, app.id)
        return KeyCreated(**KeyPublic.of(key).model_dump(), secret=raw)


@router.get("/applications/{ref}/keys")
def list_keys(svc: ServicesDep, ref: str) -> list[KeyPublic]:
    with svc.sessions() as db:
        app = keys.find_application(db, ref)
        query = select(ApiKey).where(ApiKey.application_id == app.id).order_by(ApiKey.id)
        return [KeyPublic.of(k) for k in db.scalars(query)]


@router.post("/keys/{prefix}/revoke")
def revoke_key(svc: ServicesDep, prefix: str) -> KeyPublic:
    with svc.sessions.begin() as db:
        key = keys.revoke_key(db, prefix)
        audit.record(db, ACTOR, "key.revoked", key.prefix, key.label, key.application_id)
        return KeyPublic.of(key)


@router.post("/keys/{prefix}/credits")
def top_up(svc: ServicesDep, prefix: str, body: TopUp) -> KeyPublic:
    with svc.sessions.begin() as db:
        key = keys.find_key(db, prefix)
        credits.add_credits(db, key, credits.cents(body.amount), body.note)
        what = f"{body.amount:g} credits"
        audit.record(db, ACTOR, "credits.added", key.prefix, what, key.application_id)
        return KeyPublic.of(key)


@router.get("/usage")
def usage(
    svc: ServicesDep,
    days: Annotated[int, Query(ge=1, le=366)] = 7,
    application: Annotated[str | None, Query()] = None,
    endpoint: Annotated[str | None, Query(description="e.g. /api/v1/clearbg")] = None,
) -> list[UsagePublic]:
    since = datetime.now(UTC) - timedelta(days=days)
    with svc.sessions() as db:
        app_id = keys.find_application(db, application).id if application else None
        rows = summarize(db, since, application_id=app_id, endpoint=endpoint)
    return [UsagePublic.of(r) for r in rows]
