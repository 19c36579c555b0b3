"""Usage summaries by application, key and UTC day: requests, images, errors by code, p50/p95
latency (total and upstream), credits and bytes. Computed from the usage records: one per
request, and one per bulk image (written with its charge), so images and credits agree with
the ledger."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clearbg.accounts.credits import credits
from clearbg.store.models import ApiKey, UsageRecord

__all__ = [
    "BULK_IMAGE",
    "IMAGE_ENDPOINTS",
    "IMAGE_REQUESTS",
    "PLAYGROUND",
    "KeyTotals",
    "UsageRow",
    "key_totals",
    "percentile",
    "summaries",
    "summarize",
]


@dataclass(frozen=True)
class UsageRow:
    day: str | None  # None: all days (grouped without ``day``)
    application_id: int | None
    api_key: str | None  # the key's prefix; None: anonymous (or refused before a key was known)
    requests: int
    images: int
    errors: dict[str, int] = field(default_factory=dict)
    image_requests: int = 0  # the requests the latencies are of (0: no latency that day)
    statuses: dict[str, int] = field(default_factory=dict)  # "200": n, "401": n, ...
    p50_ms: float = 0.0  # of image requests only
    p95_ms: float = 0.0
    upstream_p50_ms: float | None = None
    upstream_p95_ms: float | None = None
    credits: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


# the endpoint of each image of a bulk job, recorded when it is charged (the POST that
# submits the job is recorded under /v1/bulk, like any request)
BULK_IMAGE: Final = "/v1/bulk#image"
# the console's playground: a gateway call the server makes for the signed-in user
PLAYGROUND: Final = "/console/apps/{app_id}/playground/run"
# the requests that ask for one image: their latency is the latency users feel (a poll of a
# bulk job or of /v1/account answers in milliseconds and would hide it)
IMAGE_REQUESTS: Final = ("/v1/removebg", "/api/v1/clearbg", PLAYGROUND)
# the endpoints whose 200 delivers an image (a GET of an account or of a job does not)
IMAGE_ENDPOINTS: Final = (*IMAGE_REQUESTS, BULK_IMAGE)

Group = tuple[str | None, int | None, str | None]  # day, application id, key prefix


def summarize(
    db: Session,
    since: datetime,
    *,
    application_id: int | None = None,
    endpoint: str | None = None,
    by: tuple[str, ...] = ("day", "application", "key"),
) -> list[UsageRow]:
    """One row per group of ``by`` (any of ``day``, ``application``, ``key``), oldest first."""
    return summaries(db, since, [by], application_id=application_id, endpoint=endpoint)[0]


def summaries(
    db: Session,
    since: datetime,
    groupings: Sequence[tuple[str, ...]],
    *,
    application_id: int | None = None,
    endpoint: str | None = None,
) -> list[list[UsageRow]]:
    """``summarize`` for several groupings at once, from one read of the records."""
    query = (
        select(UsageRecord, ApiKey.prefix)
        .outerjoin(ApiKey, ApiKey.id == UsageRecord.api_key_id)
        .where(UsageRecord.created_at >= since)
        .order_by(UsageRecord.id)
    )
    if application_id is not None:
        query = query.where(UsageRecord.application_id == application_id)
    if endpoint is not None:
        query = query.where(UsageRecord.endpoint == endpoint)
    found = [(record, prefix) for record, prefix in db.execute(query)]
    return [_rows(found, by) for by in groupings]


def _rows(found: Sequence[tuple[UsageRecord, str | None]], by: tuple[str, ...]) -> list[UsageRow]:
    groups: dict[Group, list[UsageRecord]] = defaultdict(list)
    for record, key_prefix in found:
        group = (
            record.created_at.strftime("%Y-%m-%d") if "day" in by else None,
            record.application_id if "application" in by else None,
            key_prefix if "key" in by else None,
        )
        groups[group].append(record)
    rows = []
    for (day, app_id, prefix), records in sorted(
        groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or 0, kv[0][2] or "")
    ):
        calls = [r for r in records if r.endpoint != BULK_IMAGE]  # a bulk job is one request
        timed = [r for r in calls if r.endpoint in IMAGE_REQUESTS]
        latencies = [r.latency_ms for r in timed]
        upstream = [r.upstream_ms for r in timed if r.upstream_ms is not None]
        errors = Counter(r.error_code or str(r.status) for r in calls if r.status >= 400)
        rows.append(
            UsageRow(
                day=day,
                application_id=app_id,
                api_key=prefix,
                requests=len(calls),
                images=sum(1 for r in records if r.status == 200 and r.endpoint in IMAGE_ENDPOINTS),
                errors=dict(sorted(errors.items())),
                image_requests=len(timed),
                statuses=dict(sorted(Counter(str(r.status) for r in calls).items())),
                p50_ms=percentile(latencies, 50),
                p95_ms=percentile(latencies, 95),
                upstream_p50_ms=percentile(upstream, 50) if upstream else None,
                upstream_p95_ms=percentile(upstream, 95) if upstream else None,
                credits=credits(sum(r.credits_cents for r in records)),
                bytes_in=sum(r.bytes_in for r in records),
                bytes_out=sum(r.bytes_out for r in records),
            )
        )
    return rows


@dataclass(frozen=True)
class KeyTotals:
    requests: int
    images: int  # single calls and bulk images
    credits: float


def key_totals(db: Session, api_key_id: int) -> KeyTotals:
    """All-time totals of one key from its usage records (bulk images included)."""
    row = db.execute(
        select(
            func.count(UsageRecord.id).filter(UsageRecord.endpoint != BULK_IMAGE),
            func.count(UsageRecord.id).filter(
                UsageRecord.status == 200, UsageRecord.endpoint.in_(IMAGE_ENDPOINTS)
            ),
            func.coalesce(func.sum(UsageRecord.credits_cents), 0),
        ).where(UsageRecord.api_key_id == api_key_id)
    ).one()
    return KeyTotals(int(row[0]), int(row[1]), credits(int(row[2])))
