"""``GET /v1/account``: the calling key's balance and usage."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from clearbg.accounts.usage import key_totals
from clearbg.api.deps import CallerDep, ServicesDep

router = APIRouter(tags=["account"])


class AccountPublic(BaseModel):
    key_prefix: str
    label: str
    application: str
    unlimited: bool
    credits: float
    expires_at: datetime | None
    images: int = Field(description="images delivered: single calls and bulk jobs")
    requests: int = Field(description="requests made with the key (a bulk job is one)")
    credits_spent: float = Field(description="single calls and bulk images, as in the ledger")


@router.get("/v1/account")
def account(svc: ServicesDep, who: CallerDep) -> AccountPublic:
    with svc.sessions() as db:
        totals = key_totals(db, who.key.id)
    return AccountPublic(
        key_prefix=who.key.prefix,
        label=who.key.label,
        application=who.app.name,
        unlimited=who.key.unlimited,
        credits=who.key.balance_cents / 100,
        expires_at=who.key.expires_at,
        requests=totals.requests,
        images=totals.images,
        credits_spent=totals.credits,
    )
