"""POST /v1/removebg over real HTTP: the image, its headers, every error and the credits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image

from clearbg.engine import Engine
from tests.api.conftest import Server, start_server
from tests.conftest import PHOTOS
from tests.waiting import wait_for

CAR = (PHOTOS / "car-1.jpg").read_bytes()


def post(
    client: httpx.Client, data: bytes = CAR, name: str = "car.jpg", **form: str
) -> httpx.Response:
    return client.post("/v1/removebg", files={"image": (name, data, "image/jpeg")}, data=form)


def assert_problem(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(code) and body["detail"] and body["title"]
    assert body["request_id"] == resp.headers["x-request-id"]


def test_a_photo_comes_back_as_a_transparent_png_with_its_headers(server: Server) -> None:
    key = server.make_key(credits_=5)
    with server.client(key) as c:
        resp = post(c)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "image/png"
        im = Image.open(io.BytesIO(resp.content))
        assert (im.mode, im.size) == ("RGBA", (480, 360))
        h = resp.headers
        assert (h["x-width"], h["x-height"], h["x-credits-charged"]) == ("480", "360", "1")
        assert h["x-model"] == "u2netp" and int(h["x-processing-ms"]) > 0
        assert 0 < int(h["x-foreground-width"]) <= 480 and 0 < int(h["x-foreground-height"]) <= 360
        assert int(h["x-foreground-left"]) >= 0 and int(h["x-foreground-top"]) >= 0
        assert h["x-ratelimit-limit"] == "120" and int(h["x-ratelimit-remaining"]) < 120
        assert c.get("/v1/account").json()["credits"] == 4  # charged with the answer

        def account() -> dict[str, int]:
            body: dict[str, int] = c.get("/v1/account").json()
            return body

        # usage is recorded just after the answer (group commit): it shows within moments
        seen = wait_for(account, lambda a: a["images"] > 0, seconds=5, what="the image's usage")
        assert seen["images"] == 1
        # the GETs that asked for it are requests, not images
        seen = wait_for(account, lambda a: a["requests"] > 1, seconds=5, what="the GETs' usage")
        assert seen["images"] == 1


@pytest.mark.parametrize(
    ("form", "media", "mode", "size"),
    [
        ({"format": "jpg"}, "image/jpeg", "RGB", (480, 360)),
        ({"format": "webp", "bg_color": "#00ff00"}, "image/webp", "RGB", (480, 360)),
        ({"size": "preview", "channels": "alpha"}, "image/png", "L", (480, 360)),
        ({"crop": "true", "crop_margin": "10px", "model": "u2netp"}, "image/png", "RGBA", None),
        ({"flip": "true"}, "image/png", "RGBA", (480, 360)),
    ],
)
def test_options_change_the_result(
    server: Server, form: dict[str, str], media: str, mode: str, size: tuple[int, int] | None
) -> None:
    with server.client(server.make_key()) as c:
        resp = post(c, **form)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == media
    im = Image.open(io.BytesIO(resp.content))
    assert im.mode == mode
    if size:
        assert im.size == size
    else:
        assert im.width < 480 and im.height < 360


def test_preview_costs_less_than_full_size(server: Server) -> None:
    key = server.make_key(credits_=1)
    with server.client(key) as c:
        assert post(c, size="preview").headers["x-credits-charged"] == "0.25"
        assert c.get("/v1/account").json()["credits"] == 0.75


def test_missing_invalid_revoked_and_expired_keys_are_401(server: Server) -> None:
    with server.client() as c:
        assert_problem(post(c), 401, "missing_api_key")
    with server.client("cbg_nope_nope") as c:
        assert_problem(post(c), 401, "invalid_api_key")
    revoked = server.make_key()
    server.revoke(revoked)
    with server.client(revoked) as c:
        assert_problem(post(c), 401, "invalid_api_key")
    expired = server.make_key(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with server.client(expired) as c:
        assert_problem(post(c), 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("data", "form", "status", "code"),
    [
        (b"", {}, 400, "empty_image"),
        (b"hello, not an image", {}, 400, "not_an_image"),
        (CAR[: len(CAR) // 2], {}, 400, "truncated_image"),
        (CAR, {"format": "gif"}, 400, "invalid_option"),
        (CAR, {"size": "8k"}, 400, "invalid_option"),
        (CAR, {"bg_color": "not-a-colour"}, 400, "invalid_option"),
        (CAR, {"flip": "maybe"}, 400, "invalid_option"),
        (CAR, {"model": "nope"}, 400, "unknown_model"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_costs_nothing(
    server: Server, data: bytes, form: dict[str, str], status: int, code: str
) -> None:
    key = server.make_key(credits_=3)
    with server.client(key) as c:
        assert_problem(post(c, data, **form), status, code)
        assert c.get("/v1/account").json()["credits"] == 3


def test_unsupported_format_is_415(server: Server) -> None:
    buf = io.BytesIO()
    Image.open(io.BytesIO(CAR)).resize((64, 64)).save(buf, "ICO")
    with server.client(server.make_key()) as c:
        assert_problem(post(c, buf.getvalue(), "x.ico"), 415, "unsupported_format")


def test_missing_image_field_is_400(server: Server) -> None:
    with server.client(server.make_key()) as c:
        assert_problem(c.post("/v1/removebg", data={"size": "4k"}), 400, "missing_image")


def test_no_credits_is_402(server: Server) -> None:
    with server.client(server.make_key(credits_=0)) as c:
        assert_problem(post(c), 402, "insufficient_credits")


@pytest.mark.slow
def test_sixty_parallel_requests_on_twenty_five_credits(server: Server) -> None:
    key = server.make_key(credits_=25)
    small = io.BytesIO()
    Image.open(io.BytesIO(CAR)).resize((96, 72)).save(small, "JPEG")
    with server.client(key, timeout=300) as c, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(c, small.getvalue()).status_code, range(60)))
        assert answers.count(200) == 25 and answers.count(402) == 35
        assert c.get("/v1/account").json()["credits"] == 0
    from sqlalchemy import func, select

    from clearbg.store.db import make_engine, sessions
    from clearbg.store.models import ApiKey, LedgerEntry

    factory = sessions(make_engine(server.settings.database_url))
    with factory() as db:
        key_id = db.scalar(select(ApiKey.id).where(ApiKey.prefix == key[:12]))
        total = db.scalar(
            select(func.sum(LedgerEntry.amount_cents)).where(LedgerEntry.api_key_id == key_id)
        )
        charges = db.scalar(
            select(func.count()).where(
                LedgerEntry.api_key_id == key_id, LedgerEntry.reason == "charge"
            )
        )
    assert total == 0 and charges == 25  # 25 credits added, 25 charges of one credit


def test_idempotency_key_replays_and_never_charges_twice(server: Server) -> None:
    key = server.make_key(credits_=5)
    with server.client(key, timeout=300) as c, ThreadPoolExecutor(6) as pool:
        headers = {"Idempotency-Key": "same-request-1"}
        answers = list(
            pool.map(
                lambda _: c.post("/v1/removebg", files={"image": ("c.jpg", CAR)}, headers=headers),
                range(6),
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert set(codes) <= {200, 409} and 200 in codes
        first = next(a for a in answers if a.status_code == 200)
        replay = c.post("/v1/removebg", files={"image": ("c.jpg", CAR)}, headers=headers)
        assert replay.status_code == 200 and replay.content == first.content
        assert replay.headers["idempotent-replayed"] == "true"
        assert c.get("/v1/account").json()["credits"] == 4
        other = c.post(
            "/v1/removebg",
            files={"image": ("c.jpg", CAR)},
            data={"size": "preview"},
            headers=headers,
        )
        assert_problem(other, 422, "idempotency_key_reused")
    for a in answers:
        if a.status_code == 409:
            assert_problem(a, 409, "idempotency_in_progress")


def test_upload_over_the_limit_is_413(tmp_path: Path, api_engine: Engine) -> None:
    srv, stop = start_server(tmp_path, api_engine, server={"upload_limit_mb": 0.5})
    try:
        with srv.client(srv.make_key()) as c:
            assert_problem(post(c, CAR + b"\0" * 1_000_000), 413, "payload_too_large")

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
                yield (
                    b'--zz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"'
                    b"\r\nContent-Type: image/jpeg\r\n\r\n"
                )
                for _ in range(20):
                    yield b"x" * 100_000

            streamed = c.post(
                "/v1/removebg",
                content=chunks(),
                headers={"content-type": "multipart/form-data; boundary=zz"},
            )
            assert_problem(streamed, 413, "payload_too_large")
            assert post(c).status_code == 200
    finally:
        stop()


def test_rate_limit_is_429_with_retry_after(tmp_path: Path, api_engine: Engine) -> None:
    srv, stop = start_server(tmp_path, api_engine, app={"rate": 2})  # type: ignore[arg-type]
    try:
        with srv.client(srv.make_key()) as c:
            tiny = io.BytesIO()
            Image.open(io.BytesIO(CAR)).resize((32, 24)).save(tiny, "PNG")
            first = post(c, tiny.getvalue())
            assert first.headers["x-ratelimit-remaining"] == "1"
            post(c, tiny.getvalue())
            third = post(c, tiny.getvalue())
            assert_problem(third, 429, "rate_limited")
            assert int(third.headers["retry-after"]) >= 1
            assert third.headers["x-ratelimit-remaining"] == "0"
            assert c.get("/v1/account").status_code == 429  # every endpoint counts
        assert srv.balance(c.headers["x-api-key"]) == 8
    finally:
        stop()


def test_a_burst_beyond_the_queue_is_503_with_retry_after(
    tmp_path: Path, api_engine: Engine
) -> None:
    srv, stop = start_server(tmp_path, api_engine, server={"engine_slots": 1, "queue_limit": 0})
    try:
        with srv.client(srv.make_key(credits_=20), timeout=300) as c, ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(c), range(8)))
        codes = [a.status_code for a in answers]
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes
        for a in answers:
            if a.status_code == 503:
                assert_problem(a, 503, "overloaded")
                assert a.headers["retry-after"]
    finally:
        stop()


def test_operations_endpoints(server: Server) -> None:
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200
        assert "/v1/removebg" in c.get("/openapi.json").json()["paths"]
        assert c.get("/docs").status_code == 200
        text = c.get("/metrics").text
        assert "clearbg_requests_total" in text and "clearbg_queue_depth" in text
        assert_problem(c.get("/nowhere"), 404, "not_found")
