"""``GET /v1/account``: the calling key's balance and usage."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from clearbg.accounts.credits import credits
from clearbg.accounts.usage import IMAGE_ENDPOINTS
from clearbg.api.deps import CallerDep, ServicesDep
from clearbg.store.models import BulkImage, BulkJob, UsageRecord

router = APIRouter(tags=["account"])


class AccountPublic(BaseModel):
    key_prefix: str
    label: str
    application: str
    unlimited: bool
    credits: float
    expires_at: datetime | None
    images: int = Field(description="images delivered: single calls and bulk jobs")
    requests: int
    credits_spent: float


@router.get("/v1/account")
def account(svc: ServicesDep, who: CallerDep) -> AccountPublic:
    with svc.sessions() as db:
        row = db.execute(
            select(
                func.count(UsageRecord.id),
                func.count(UsageRecord.id).filter(
                    UsageRecord.status == 200, UsageRecord.endpoint.in_(IMAGE_ENDPOINTS)
                ),
                func.coalesce(func.sum(UsageRecord.credits_cents), 0),
            ).where(UsageRecord.api_key_id == who.key.id)
        ).one()
        bulk_images = db.scalar(
            select(func.count())
            .select_from(BulkImage)
            .join(BulkJob, BulkJob.id == BulkImage.job_id)
            .where(BulkJob.api_key_id == who.key.id, BulkImage.status == "done")
        )
        balance = who.key.balance_cents
    return AccountPublic(
        key_prefix=who.key.prefix,
        label=who.key.label,
        application=who.app.name,
        unlimited=who.key.unlimited,
        credits=credits(balance),
        expires_at=who.key.expires_at,
        requests=int(row[0]),
        images=int(row[1]) + int(bulk_images or 0),
        credits_spent=credits(int(row[2])),
    )
