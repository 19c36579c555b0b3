"""POST /api/v1/clearbg over real HTTP: every input form and every row of the error table."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from clearbg.store.models import ApiKey, Application, LedgerEntry, UsageRecord
from tests.gateway.conftest import PNG, Gateway
from tests.waiting import wait_for


def assert_problem(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"] and body["request_id"] == resp.headers["x-request-id"]


def wait_usage(gateway: Gateway, at_least: int, app_key: str | None = None) -> list[UsageRecord]:
    """The gateway's usage records, of ``app_key``'s application if given, once there are
    ``at_least`` (they are written just after the answer is sent)."""

    def rows() -> list[UsageRecord]:
        query = select(UsageRecord).where(UsageRecord.endpoint == "/api/v1/clearbg")
        if app_key is not None:
            query = query.join(Application).where(Application.app_key == app_key)
        with gateway.server.db() as db:
            return list(db.scalars(query.order_by(UsageRecord.id)))

    return wait_for(rows, lambda r: len(r) >= at_least, what=f"{at_least} usage records")


def assert_cutout(resp: httpx.Response) -> None:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(resp.content))
    assert (im.mode, im.size) == ("RGBA", (64, 48))


@pytest.fixture
def app_key(gateway: Gateway, request: pytest.FixtureRequest) -> str:
    """An application of this test's own on the module's server: no other test sees its rows."""
    return gateway.make_app(f"shop {request.node.name}", anon_daily_limit=1000)


def test_a_file_with_a_key_comes_back_and_is_charged_once(gateway: Gateway, app_key: str) -> None:
    key = gateway.make_key(app_key, credits_=3)
    resp = gateway.post(app_key, key, file=PNG)
    assert_cutout(resp)
    assert resp.headers["x-credits-charged"] == "1"
    assert resp.headers["server-timing"].startswith("upstream;dur=")
    assert gateway.server.balance(key) == 2
    with gateway.server.db() as db:
        rows = db.scalars(
            select(LedgerEntry)
            .join(ApiKey, ApiKey.id == LedgerEntry.api_key_id)
            .where(ApiKey.prefix == key[:12], LedgerEntry.reason == "charge")
        ).all()
        assert [r.reference for r in rows if r.note == "" and r.amount_cents == -100]
    last = wait_usage(gateway, 1, app_key)[-1]
    assert last.status == 200 and last.credits_cents == 100 and last.api_key_id
    assert last.client_ip_hash and "127.0.0.1" not in last.client_ip_hash
    assert last.upstream_ms and last.latency_ms >= last.upstream_ms
    assert last.bytes_in == len(PNG) and last.bytes_out == len(resp.content)


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(PNG).decode(),
        "  " + base64.b64encode(PNG).decode() + "\n",
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
    ],
    ids=["base64", "base64-whitespace", "base64-urlsafe-unpadded", "data-url"],
)
def test_text_forms_are_recognised(gateway: Gateway, app_key: str, text: str) -> None:
    assert_cutout(gateway.post(app_key, text=text))


def test_a_text_url_on_an_allowed_host_is_fetched(
    gateway: Gateway, app_key: str, image_host: str
) -> None:
    assert_cutout(gateway.post(app_key, text=image_host + "/img.png"))


def test_anonymous_requests_leave_usage_without_a_key(gateway: Gateway, app_key: str) -> None:
    resp = gateway.post(app_key, file=PNG)
    assert_cutout(resp)
    assert resp.headers["x-credits-charged"] == "0"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("no-field", "missing_image"),
        ("file-and-text", "image_conflict"),
        ("two-files", "image_conflict"),
        ("empty-file", "empty_image"),
        ("empty-text", "empty_image"),
        ("bad-base64", "invalid_base64"),
        ("bad-data-url", "invalid_base64"),
        ("not-an-image", "not_an_image"),
        ("base64-not-an-image", "not_an_image"),
        ("ftp-url", "url_not_allowed"),
        ("not-multipart", "invalid_multipart"),
        ("broken-multipart", "invalid_multipart"),
    ],
)
def test_bad_input_is_a_400_with_its_own_code(
    gateway: Gateway, app_key: str, kind: str, code: str
) -> None:
    key = gateway.make_key(app_key, credits_=1)
    url = gateway.url + "/api/v1/clearbg"
    h = {"X-App-Key": app_key, "X-Api-Key": key}
    if kind == "no-field":
        resp = httpx.post(url, headers=h, files={"other": ("a.png", PNG, "image/png")})
    elif kind == "file-and-text":
        resp = gateway.post(app_key, key, file=PNG, text=base64.b64encode(PNG).decode())
    elif kind == "two-files":
        resp = httpx.post(url, headers=h, files=[("image", ("a.png", PNG, "image/png"))] * 2)
    elif kind == "empty-file":
        resp = gateway.post(app_key, key, file=b"")
    elif kind == "empty-text":
        resp = gateway.post(app_key, key, text="   ")
    elif kind == "bad-base64":
        resp = gateway.post(app_key, key, text="this is not base64!")
    elif kind == "bad-data-url":
        resp = gateway.post(app_key, key, text="data:image/png,not-base64")
    elif kind == "not-an-image":
        resp = gateway.post(app_key, key, file=b"plain text, no picture")
    elif kind == "base64-not-an-image":
        resp = gateway.post(app_key, key, text=base64.b64encode(b"no picture here").decode())
    elif kind == "ftp-url":
        resp = gateway.post(app_key, key, text="ftp://example.com/a.png")
    elif kind == "not-multipart":
        resp = httpx.post(url, headers=h, json={"image": "x"})
    else:
        resp = httpx.post(
            url,
            headers={**h, "Content-Type": "multipart/form-data"},  # no boundary
            content=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc',
        )
    assert_problem(resp, 400, code)
    assert gateway.server.balance(key) == 1  # nothing charged


def test_a_file_over_25_mb_is_413(gateway: Gateway, app_key: str) -> None:
    resp = gateway.post(app_key, file=PNG + b"\0" * (26 * 1024 * 1024))
    assert_problem(resp, 413, "payload_too_large")


def test_missing_app_key_is_400(gateway: Gateway) -> None:
    assert_problem(gateway.post(None, file=PNG), 400, "missing_app_key")
    assert_problem(gateway.post("", file=PNG), 400, "missing_app_key")
    refused = wait_for(
        lambda: [r for r in wait_usage(gateway, 0) if r.error_code == "missing_app_key"],
        lambda rows: len(rows) >= 2,
        what="two usage records of missing_app_key",
    )
    assert len(refused) == 2 and all(r.client_ip_hash and r.application_id is None for r in refused)


def test_unknown_app_key_is_404(gateway: Gateway) -> None:
    assert_problem(gateway.post("app_nosuchthing", file=PNG), 404, "unknown_application")


@pytest.mark.parametrize("case", ["unknown", "revoked", "expired", "other-app", "empty"])
def test_bad_api_keys_are_401(gateway: Gateway, app_key: str, case: str) -> None:
    from datetime import UTC, datetime, timedelta

    if case == "unknown":
        key, code = "cbg_AAAAAAAA_" + "B" * 32, "invalid_api_key"
    elif case == "revoked":
        key, code = gateway.make_key(app_key), "invalid_api_key"
        gateway.server.revoke(key)
    elif case == "expired":
        past = datetime.now(UTC) - timedelta(seconds=1)
        key, code = gateway.make_key(app_key, expires_at=past), "invalid_api_key"
    elif case == "other-app":
        other = gateway.make_app("other-for-401")
        key, code = gateway.make_key(other), "api_key_wrong_application"
    else:
        key, code = "", "invalid_api_key"
    assert_problem(gateway.post(app_key, key, file=PNG), 401, code)


def test_not_enough_credits_is_403_and_nothing_moves(gateway: Gateway, app_key: str) -> None:
    key = gateway.make_key(app_key, credits_=0.5)
    assert_problem(gateway.post(app_key, key, file=PNG), 403, "insufficient_credits")
    assert gateway.server.balance(key) == 0.5


def test_credit_cost_is_per_application(gateway: Gateway) -> None:
    app = gateway.make_app("pricey", credit_cost_cents=250)
    key = gateway.make_key(app, credits_=3)
    resp = gateway.post(app, key, file=PNG)
    assert_cutout(resp)
    assert resp.headers["x-credits-charged"] == "2.5"
    assert gateway.server.balance(key) == 0.5


def test_anonymous_daily_limit_is_429_until_midnight_utc(gateway: Gateway) -> None:
    from datetime import UTC, datetime, timedelta

    app = gateway.make_app("anon-two", anon_daily_limit=2)
    for _ in range(2):
        assert_cutout(gateway.post(app, file=PNG))
    resp = gateway.post(app, file=PNG)
    assert_problem(resp, 429, "anonymous_limit_reached")
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(int(resp.headers["retry-after"]) - (midnight - now).total_seconds()) < 60
    # a key still works; bad input never counted
    assert_cutout(gateway.post(app, gateway.make_key(app), file=PNG))


def test_no_anonymous_use_when_the_limit_is_zero(gateway: Gateway) -> None:
    app = gateway.make_app("keys-only", anon_daily_limit=0)
    assert_problem(gateway.post(app, file=PNG), 401, "missing_api_key")


def test_throttle_per_ip_and_per_key_is_429_with_headers(gateway: Gateway) -> None:
    app = gateway.make_app("throttled", ip_per_minute=3, key_per_minute=2, anon_daily_limit=100)
    key = gateway.make_key(app)
    ok = gateway.post(app, key, file=b"x")  # bad input still counts against the throttle
    assert ok.status_code == 400
    assert ok.headers["x-ratelimit-limit"] == "2" and ok.headers["x-ratelimit-remaining"] == "1"
    gateway.post(app, key, file=b"x")
    resp = gateway.post(app, key, file=PNG)
    assert_problem(resp, 429, "rate_limited")
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["x-ratelimit-remaining"] == "0"
    assert gateway.server.balance(key) == 10
    # the IP limit (3) is now spent too, anonymous or not
    resp = gateway.post(app, file=PNG)
    assert_problem(resp, 429, "rate_limited")
    assert resp.headers["x-ratelimit-limit"] == "3"


def test_disabled_or_unconfigured_upstream_is_503_without_charge(gateway: Gateway) -> None:
    app = gateway.make_app("switched-off", enabled=False)
    key = gateway.make_key(app, credits_=2)
    assert_problem(gateway.post(app, key, file=PNG), 503, "gateway_disabled")
    gateway.set_app(app, enabled=True, upstream="none")
    assert_problem(gateway.post(app, key, file=PNG), 503, "upstream_not_configured")
    gateway.set_app(app, upstream="http", upstream_url=None)
    assert_problem(gateway.post(app, key, file=PNG), 503, "upstream_not_configured")
    assert gateway.server.balance(key) == 2


def test_unreachable_upstream_is_502_and_refunded(gateway: Gateway) -> None:
    from tests.api.conftest import free_port

    app = gateway.make_app("dead-upstream", upstream="http")
    gateway.set_app(app, upstream_url=f"http://127.0.0.1:{free_port()}")
    key = gateway.make_key(app, credits_=2)
    assert_problem(gateway.post(app, key, file=PNG), 502, "upstream_unreachable")
    assert gateway.server.balance(key) == 2


@pytest.mark.parametrize(
    ("path", "code"),
    [("", "upstream_error"), ("/garbage", "upstream_bad_response"), ("/slow", "upstream_timeout")],
)
def test_upstream_faults_are_502_and_refunded(
    gateway: Gateway, image_host: str, path: str, code: str
) -> None:
    app = gateway.make_app(f"faulty{path}", upstream="http", upstream_url=image_host + path)
    key = gateway.make_key(app, credits_=2)
    assert_problem(gateway.post(app, key, file=PNG), 502, code)
    assert gateway.server.balance(key) == 2
    with gateway.server.db() as db:
        reasons = db.scalars(
            select(LedgerEntry.reason)
            .join(ApiKey, ApiKey.id == LedgerEntry.api_key_id)
            .where(ApiKey.prefix == key[:12])
            .order_by(LedgerEntry.id)
        ).all()
    assert reasons == ["topup", "charge", "refund"]


def test_the_upstream_content_type_is_passed_on(gateway: Gateway, image_host: str) -> None:
    app = gateway.make_app("webp-upstream", upstream="http", upstream_url=image_host + "/webp")
    resp = gateway.post(app, gateway.make_key(app), file=PNG)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/webp"
    assert resp.content == b"RIFF....WEBPVP8 fake bytes"


def test_metrics_carry_the_application_id(gateway: Gateway, app_key: str) -> None:
    gateway.post(app_key, file=PNG)
    text = httpx.get(gateway.url + "/metrics").text
    assert 'clearbg_gateway_requests_total{application="' in text
    assert "127.0.0.1" not in text


def test_output_options_beside_image_choose_the_result(gateway: Gateway, app_key: str) -> None:
    """Not in the spec (it names only `image`): /v1/removebg's output fields are passed on."""
    key = gateway.make_key(app_key, credits_=3)
    resp = httpx.post(
        gateway.url + "/api/v1/clearbg",
        headers={"X-App-Key": app_key, "X-Api-Key": key},
        files={
            "image": ("p.png", PNG, "image/png"),
            "format": (None, "jpg"),
            "bg_color": (None, "#ff0000"),
        },
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(resp.content))
    assert im.mode == "RGB" and im.getpixel((0, 0))[0] > 200  # the background is red
    bad = httpx.post(
        gateway.url + "/api/v1/clearbg",
        headers={"X-App-Key": app_key, "X-Api-Key": key},
        files={"image": ("p.png", PNG, "image/png"), "size": (None, "huge")},
        timeout=60,
    )
    assert_problem(bad, 400, "invalid_option")
    assert gateway.server.balance(key) == 2  # the refused request cost nothing
