"""A request the server refuses before any route runs still counts where it was sent: a 413 on
the gateway is recorded under /api/v1/clearbg and the application its X-App-Key names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from clearbg.engine import Engine
from clearbg.store.models import UsageRecord
from tests.api.conftest import Server, start_server


@pytest.fixture
def small_limit(tmp_path: Path, api_engine: Engine) -> Iterator[Server]:
    srv, stop = start_server(tmp_path, api_engine, server={"upload_limit_mb": 0.1})
    yield srv
    stop()


def _records(srv: Server, code: str) -> list[UsageRecord]:
    deadline = time.monotonic() + 10
    while True:
        with srv.db() as db:
            found = list(db.scalars(select(UsageRecord).where(UsageRecord.error_code == code)))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("app_key_known", [True, False])
def test_a_413_on_the_gateway_is_recorded_under_the_gateway(
    small_limit: Server, app_key_known: bool
) -> None:
    app_key = small_limit.app_key if app_key_known else "app_nobody"
    resp = httpx.post(
        small_limit.url + "/api/v1/clearbg",
        headers={"X-App-Key": app_key},
        files={"image": ("big.png", b"\0" * 1024 * 1024)},
    )
    assert resp.status_code == 413
    [record] = _records(small_limit, "payload_too_large")
    assert record.endpoint == "/api/v1/clearbg"
    assert record.application_id == (small_limit.app_id if app_key_known else None)
