"""The JSON admin API under /admin (Bearer token from the settings) and client IPs behind
trusted proxies."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from clearbg.accounts import audit
from clearbg.engine import Engine
from clearbg.gateway.anonymous import client_ip, parse_networks
from tests.gateway.conftest import PNG, Gateway, start_gateway
from tests.gateway.test_clearbg import assert_cutout, assert_problem, wait_usage

TOKEN = "admin-s3cret-token"


@pytest.fixture(scope="module")
def admin_gw(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Gateway]:
    """One server for the module, for speed: each test makes its own application and keys."""
    gw, stop = start_gateway(
        tmp_path_factory.mktemp("admin"),
        api_engine,
        admin={"token": TOKEN},
        gateway={"trusted_proxies": ["127.0.0.1/32"]},
    )
    yield gw
    stop()  # type: ignore[operator]


@pytest.fixture
def admin(admin_gw: Gateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=admin_gw.url + "/admin", headers=headers, timeout=30) as c:
        yield c


def test_without_a_token_setting_the_admin_api_does_not_exist(gateway: Gateway) -> None:
    resp = httpx.get(gateway.url + "/admin/applications", headers={"Authorization": "Bearer x"})
    assert_problem(resp, 404, "not_found")


@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_a_wrong_or_missing_token_is_401(admin_gw: Gateway, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    resp = httpx.get(admin_gw.url + "/admin/applications", headers=headers)
    assert_problem(resp, 401, "invalid_admin_token")


def test_applications_keys_credits_and_usage(admin_gw: Gateway, admin: httpx.Client) -> None:
    resp = admin.post(
        "/applications",
        json={"name": "portal", "anon_daily_limit": 5, "credit_cost": 2, "ip_per_minute": 100},
    )
    assert resp.status_code == 201, resp.text
    app = resp.json()
    assert app["upstream"] == "local" and app["gateway_enabled"] is True
    assert (app["anon_daily_limit"], app["credit_cost"], app["ip_per_minute"]) == (5, 2.0, 100)
    assert admin.get(f"/applications/{app['id']}").json() == app
    assert admin.get("/applications/portal").json()["app_key"] == app["app_key"]
    assert "portal" in [a["name"] for a in admin.get("/applications").json()]

    patched = admin.patch(
        "/applications/portal",
        json={"ip_per_minute": None, "upstream": "http", "upstream_url": "http://10.9.9.9:8000"},
    ).json()
    assert patched["ip_per_minute"] is None and patched["upstream"] == "http"
    assert patched["upstream_key_set"] is False
    patched = admin.patch("/applications/portal", json={"upstream_key": "cbg_x"}).json()
    assert patched["upstream_key_set"] is True and "cbg_x" not in str(patched)
    assert_problem(
        admin.patch("/applications/portal", json={"upstream": "ftp"}), 400, "invalid_option"
    )
    assert_problem(admin.get("/applications/nope"), 404, "not_found")
    admin.patch("/applications/portal", json={"upstream": "local"})

    made = admin.post("/applications/portal/keys", json={"label": "web", "credits": 3})
    assert made.status_code == 201
    secret, prefix = made.json()["secret"], made.json()["prefix"]
    assert secret.startswith(prefix) and made.json()["credits"] == 3
    listed = admin.get("/applications/portal/keys").json()
    assert [k["prefix"] for k in listed] == [prefix] and "secret" not in listed[0]

    app_key = app["app_key"]
    assert_cutout(admin_gw.post(app_key, secret, file=PNG))  # costs 2
    assert_problem(admin_gw.post(app_key, secret, file=PNG), 403, "insufficient_credits")
    assert admin.post(f"/keys/{prefix}/credits", json={"amount": 4}).json()["credits"] == 5
    assert_problem(
        admin.post(f"/keys/{prefix}/credits", json={"amount": 0}), 400, "invalid_request"
    )
    assert admin.post(f"/keys/{prefix}/revoke").json()["active"] is False
    assert_problem(admin_gw.post(app_key, secret, file=PNG), 401, "invalid_api_key")
    assert_problem(admin_gw.post(app_key, file=b"not an image"), 400, "not_an_image")

    wait_usage(admin_gw, 4, app_key)
    rows = admin.get("/usage", params={"application": "portal", "days": 1}).json()
    by_key = {r["api_key"]: r for r in rows}
    keyed = by_key[prefix]
    assert (keyed["requests"], keyed["images"], keyed["credits"]) == (2, 1, 2.0)
    assert keyed["errors"] == {"insufficient_credits": 1}
    assert 0 < keyed["p50_ms"] <= keyed["p95_ms"]
    assert keyed["upstream_p50_ms"] is not None
    # a refused key is not credited with the attempt (its prefix could be anyone's guess)
    assert by_key[None]["errors"] == {"invalid_api_key": 1, "not_an_image": 1}

    # every change is in the audit log, by the admin API, and no upstream key's value is
    with admin_gw.server.db() as db:
        logged = audit.events(db, application_id=app["id"])
    assert {e.actor for e in logged} == {"admin API"}
    assert [e.action for e in reversed(logged)] == [
        "app.created",
        *["settings.changed"] * 3,
        "key.created",
        "credits.added",
        "key.revoked",
    ]
    assert "cbg_x" not in str([(e.target, e.detail) for e in logged])


def test_forwarded_for_is_believed_only_from_trusted_proxies(admin_gw: Gateway) -> None:
    app = admin_gw.make_app("proxied", anon_daily_limit=1)
    first = {"X-Forwarded-For": "203.0.113.5"}
    assert_cutout(admin_gw.post(app, file=PNG, headers=first))
    assert_problem(admin_gw.post(app, file=PNG, headers=first), 429, "anonymous_limit_reached")
    # a client cannot escape by prepending a hop: the rightmost untrusted one counts
    spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
    assert_problem(admin_gw.post(app, file=PNG, headers=spoofed), 429, "anonymous_limit_reached")
    assert_cutout(admin_gw.post(app, file=PNG, headers={"X-Forwarded-For": "203.0.113.6"}))


def test_forwarded_for_is_ignored_without_trusted_proxies(gateway: Gateway) -> None:
    app = gateway.make_app("not-proxied", anon_daily_limit=1)
    assert_cutout(gateway.post(app, file=PNG, headers={"X-Forwarded-For": "203.0.113.5"}))
    resp = gateway.post(app, file=PNG, headers={"X-Forwarded-For": "203.0.113.99"})
    assert_problem(resp, 429, "anonymous_limit_reached")


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("10.0.0.2", ["1.2.3.4"], "1.2.3.4"),
        ("10.0.0.2", ["9.9.9.9, 1.2.3.4"], "1.2.3.4"),
        ("10.0.0.2", ["1.2.3.4, 10.0.0.3"], "1.2.3.4"),
        ("10.0.0.2", ["1.2.3.4", "10.0.0.3"], "1.2.3.4"),
        ("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4"),
        ("10.0.0.2", ["garbage, 10.0.0.3"], "10.0.0.3"),
        ("10.0.0.2", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.0.0.2", [], "10.0.0.2"),
        ("8.8.8.8", ["1.2.3.4"], "8.8.8.8"),
    ],
)
def test_client_ip(peer: str, xff: list[str], expected: str) -> None:
    assert client_ip(peer, xff, parse_networks(["10.0.0.0/8"])) == expected
