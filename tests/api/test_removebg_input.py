"""/v1/removebg refuses bad input with a 400 that names the field, before any credit moves."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from clearbg.store.models import ApiKey, LedgerEntry
from tests.api.conftest import Server
from tests.conftest import PHOTOS

CAR = (PHOTOS / "car-1.jpg").read_bytes()


def ledger_rows(server: Server, key: str) -> int:
    with server.db() as db:
        key_id = db.scalar(select(ApiKey.id).where(ApiKey.prefix == key[:12]))
        return int(db.scalar(select(func.count()).where(LedgerEntry.api_key_id == key_id)) or 0)


def test_a_truncated_image_moves_no_credit(server: Server) -> None:
    key = server.make_key(credits_=3)
    with server.client(key) as c:
        resp = c.post("/v1/removebg", files={"image": ("car.jpg", CAR[: len(CAR) // 2])})
    assert resp.status_code == 400 and resp.json()["code"] == "truncated_image"
    assert ledger_rows(server, key) == 1  # the top-up alone: no charge, no refund


def test_two_image_files_are_a_conflict(server: Server) -> None:
    with server.client(server.make_key()) as c:
        resp = c.post(
            "/v1/removebg", files=[("image", ("a.jpg", CAR)), ("image", ("b.jpg", b"xx"))]
        )
    assert resp.status_code == 400
    assert resp.json()["code"] == "image_conflict"


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", ""), ("bg_color", "rgb(300,0,0)"), ("format", ""), ("crop_margin", "")],
)
def test_an_empty_or_out_of_range_field_is_400_naming_it(
    server: Server, field: str, value: str
) -> None:
    with server.client(server.make_key()) as c:
        resp = c.post("/v1/removebg", files={"image": ("car.jpg", CAR)}, data={field: value})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "invalid_option" and body["detail"].startswith(f"{field}:")


def test_a_huge_value_is_not_echoed_whole(server: Server) -> None:
    with server.client(server.make_key()) as c:
        resp = c.post(
            "/v1/removebg", files={"image": ("car.jpg", CAR)}, data={"bg_color": "x" * 10_000}
        )
    assert resp.status_code == 400
    detail = resp.json()["detail"]
    assert detail.startswith("bg_color:") and len(detail) < 300 and "…" in detail


def test_an_empty_field_is_refused_on_the_gateway_too(server: Server) -> None:
    resp = httpx.post(
        server.url + "/api/v1/clearbg",
        headers={"X-App-Key": server.app_key, "X-Api-Key": server.make_key()},
        files={"image": ("car.jpg", CAR)},
        data={"size": "", "bg_color": "rgb(300,0,0)"},
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "invalid_option"


def test_a_truncated_image_moves_no_credit_on_the_gateway(server: Server) -> None:
    key = server.make_key(credits_=3)
    resp = httpx.post(
        server.url + "/api/v1/clearbg",
        headers={"X-App-Key": server.app_key, "X-Api-Key": key},
        files={"image": ("car.jpg", CAR[: len(CAR) // 2])},
    )
    assert resp.status_code == 400 and resp.json()["code"] == "truncated_image"
    assert ledger_rows(server, key) == 1
