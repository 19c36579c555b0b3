"""A real ClearBG server on 127.0.0.1 for each SDK test module (tests/api's), and small photos."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image
from sqlalchemy import select

from clearbg.accounts import keys
from clearbg.engine import Engine
from clearbg.settings import EngineSettings
from clearbg.store.models import LedgerEntry, UsageRecord
from tests.api.conftest import Server, start_server
from tests.conftest import PHOTOS


def small_jpeg(name: str = "car-1.jpg", width: int = 200) -> bytes:
    buf = io.BytesIO()
    im = Image.open(PHOTOS / name)
    im.resize((width, width * im.height // im.width)).save(buf, "JPEG")
    return buf.getvalue()


def charges(srv: Server, key: str) -> list[int]:
    """The ledger's charges of ``key`` (cents, negative), oldest first."""
    with srv.db() as db:
        key_id = keys.find_key(db, key).id
        rows = db.scalars(
            select(LedgerEntry.amount_cents).where(
                LedgerEntry.api_key_id == key_id, LedgerEntry.reason == "charge"
            )
        )
        return list(rows)


def statuses(srv: Server, key: str) -> list[int]:
    """The HTTP status of every request ``key`` made, as the usage records hold them."""
    with srv.db() as db:
        key_id = keys.find_key(db, key).id
        rows = db.scalars(select(UsageRecord.status).where(UsageRecord.api_key_id == key_id))
        return list(rows)


@pytest.fixture(scope="session")
def sdk_engine(engine_settings: EngineSettings) -> Iterator[Engine]:
    eng = Engine(engine_settings)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sdk_engine: Engine) -> Iterator[Server]:
    """One server for the module: each test makes its own keys and reads only their rows."""
    srv, stop = start_server(tmp_path_factory.mktemp("sdk"), sdk_engine)
    yield srv
    stop()
