"""Reading the credits ledger of a key: its history with what each row refers to, and the
totals that usage must agree with (``credits.py`` writes the rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from clearbg.store.models import LedgerEntry

__all__ = ["LedgerLine", "Spent", "history", "spent"]


@dataclass(frozen=True)
class LedgerLine:
    created_at: datetime
    reason: str  # topup | charge | refund
    amount: float
    balance_after: float
    note: str
    request_id: str | None  # a single call (AI API, gateway or playground)
    job_id: str | None  # a bulk job's image ...
    image: int | None  # ... and which one (0-based, as in the job)


def _refers_to(reference: str | None) -> tuple[str | None, str | None, int | None]:
    """``req:<id>`` / ``gw:<id>``: a request; ``job:<id>:<n>``: a bulk image; a refund's
    reference is the charge's with ``refund:`` before it."""
    ref = (reference or "").removeprefix("refund:")
    kind, _, rest = ref.partition(":")
    if kind in ("req", "gw") and rest:
        return rest, None, None
    if kind == "job":
        job, _, n = rest.rpartition(":")
        if job and n.isdigit():
            return None, job, int(n)
    return None, None, None


def history(db: Session, api_key_id: int, limit: int = 500) -> list[LedgerLine]:
    """The key's ledger, newest first."""
    rows = db.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.api_key_id == api_key_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return [
        LedgerLine(
            e.created_at,
            e.reason,
            e.amount_cents / 100,
            e.balance_after_cents / 100,
            e.note,
            *_refers_to(e.reference),
        )
        for e in rows
    ]


@dataclass(frozen=True)
class Spent:
    images: int  # charges not refunded
    credits: float  # charges less refunds


def spent(db: Session, api_key_ids: list[int], since: datetime | None = None) -> Spent:
    """What the ledger says these keys spent on images (since ``since``): the figures usage
    must agree with."""
    where: list[ColumnElement[bool]] = [
        LedgerEntry.api_key_id.in_(api_key_ids),
        LedgerEntry.reason.in_(("charge", "refund")),
    ]
    if since is not None:
        where.append(LedgerEntry.created_at >= since)
    counts = dict(
        db.execute(
            select(LedgerEntry.reason, func.count()).where(*where).group_by(LedgerEntry.reason)
        ).all()
    )
    cents = db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(*where))
    return Spent(counts.get("charge", 0) - counts.get("refund", 0), -int(cents or 0) / 100)
