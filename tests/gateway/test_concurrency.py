"""Parallel requests never overspend credits nor the anonymous daily limit."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from clearbg.store.models import ApiKey, LedgerEntry
from tests.gateway.conftest import PNG, Gateway
from tests.gateway.test_clearbg import wait_usage
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # each test sends a hundred or forty requests at once


def _parallel(gateway: Gateway, app: str, key: str | None, n: int) -> Counter[int]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(
            pool.map(lambda _: gateway.post(app, key, file=PNG, timeout=120).status_code, range(n))
        )
    return Counter(results)


def test_100_parallel_requests_on_30_credits(gateway: Gateway) -> None:
    app = gateway.make_app("parallel-key")
    key = gateway.make_key(app, credits_=30)
    statuses = _parallel(gateway, app, key, 100)
    assert statuses == Counter({200: 30, 403: 70})
    assert gateway.server.balance(key) == 0
    with gateway.server.db() as db:
        key_id = db.scalar(select(ApiKey.id).where(ApiKey.prefix == key[:12]))
        ledger = Counter(
            db.scalars(select(LedgerEntry.reason).where(LedgerEntry.api_key_id == key_id))
        )
        spent = db.scalar(
            select(func.sum(LedgerEntry.amount_cents)).where(
                LedgerEntry.api_key_id == key_id, LedgerEntry.reason == "charge"
            )
        )
    assert ledger == Counter({"topup": 1, "charge": 30})
    mine = wait_for(  # usage records are written just after each answer
        lambda: [r for r in wait_usage(gateway, 0, app) if r.api_key_id == key_id],
        lambda rows: len(rows) >= 100,
        seconds=20,
        what="100 usage records",
    )
    assert len(mine) == 100
    assert Counter((r.status, r.error_code) for r in mine) == Counter(
        {(200, None): 30, (403, "insufficient_credits"): 70}
    )
    assert sum(r.credits_cents for r in mine) == -(spent or 0) == 3000


def test_the_anonymous_limit_holds_under_parallel_requests(gateway: Gateway) -> None:
    app = gateway.make_app("parallel-anon", anon_daily_limit=10)
    statuses = _parallel(gateway, app, None, 40)
    assert statuses == Counter({200: 10, 429: 30})
    assert gateway.post(app, file=PNG).status_code == 429
