"""Who calls the gateway is read on every request (gateway/directory.py): a change made by the
admin API, by `clearbg admin` in another process or straight in the database counts from the
very next request; the event loop's quick SQLite reads and the pool's reads agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from clearbg.accounts import applications
from clearbg.accounts import keys as key_service
from clearbg.accounts.directory import Directory, DirectoryBusyError
from clearbg.engine import Engine
from clearbg.store.db import make_engine, migrate, sessions
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_admin_cli import admin
from tests.gateway.test_clearbg import assert_problem

TOKEN = "directory-admin-token"
NOT_AN_IMAGE = b"x"  # past every check of the caller, refused cheaply (400 not_an_image)


@pytest.fixture(scope="module")
def admin_gw(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Gateway]:
    """One server for the module, for speed: each test makes its own application and keys."""
    gw, stop = start_gateway(
        tmp_path_factory.mktemp("directory"), api_engine, admin={"token": TOKEN}
    )
    yield gw
    stop()  # type: ignore[operator]


def _admin_api(gw: Gateway) -> httpx.Client:
    return httpx.Client(
        base_url=gw.url + "/admin", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def _passes(gw: Gateway, app_key: str, key: str | None = None) -> None:
    assert_problem(gw.post(app_key, key, file=NOT_AN_IMAGE), 400, "not_an_image")


def test_a_key_revoked_by_the_admin_api_is_refused_at_once(admin_gw: Gateway) -> None:
    app = admin_gw.make_app("revoke-api")
    key = admin_gw.make_key(app)
    _passes(admin_gw, app, key)
    with _admin_api(admin_gw) as api:
        assert api.post(f"/keys/{key[:12]}/revoke").json()["active"] is False
    assert_problem(admin_gw.post(app, key, file=NOT_AN_IMAGE), 401, "invalid_api_key")


def test_a_key_revoked_by_the_cli_in_another_process_is_refused_at_once(
    admin_gw: Gateway,
) -> None:
    app = admin_gw.make_app("revoke-cli")
    key = admin_gw.make_key(app)
    _passes(admin_gw, app, key)
    admin(admin_gw.server.settings.server.data_dir, "keys", "revoke", key[:12])
    assert_problem(admin_gw.post(app, key, file=NOT_AN_IMAGE), 401, "invalid_api_key")


def test_a_key_revoked_or_expired_in_the_database_is_refused_at_once(admin_gw: Gateway) -> None:
    app = admin_gw.make_app("revoke-db")
    revoked, expiring = admin_gw.make_key(app), admin_gw.make_key(app)
    _passes(admin_gw, app, revoked)
    _passes(admin_gw, app, expiring)
    admin_gw.server.revoke(revoked)
    with admin_gw.server.db() as db, db.begin():
        key_service.find_key(db, expiring).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert_problem(admin_gw.post(app, revoked, file=NOT_AN_IMAGE), 401, "invalid_api_key")
    assert_problem(admin_gw.post(app, expiring, file=NOT_AN_IMAGE), 401, "invalid_api_key")


def test_an_application_disabled_and_enabled_by_the_admin_api_follows_at_once(
    admin_gw: Gateway,
) -> None:
    app = admin_gw.make_app("toggle-api", anon_daily_limit=5)
    _passes(admin_gw, app)
    with _admin_api(admin_gw) as api:
        api.patch("/applications/toggle-api", json={"gateway_enabled": False}).raise_for_status()
        assert_problem(admin_gw.post(app, file=NOT_AN_IMAGE), 503, "gateway_disabled")
        api.patch("/applications/toggle-api", json={"gateway_enabled": True}).raise_for_status()
    _passes(admin_gw, app)


@pytest.mark.slow
def test_settings_changed_by_the_cli_count_from_the_next_request(admin_gw: Gateway) -> None:
    """What bench/gateway_bench.py does before measuring 429s."""
    data = admin_gw.server.settings.server.data_dir
    app = admin_gw.make_app("cli-rate", anon_daily_limit=5)
    key = admin_gw.make_key(app)
    for _ in range(3):
        _passes(admin_gw, app, key)  # no throttle per key in these tests' settings
    admin(data, "apps", "set", "cli-rate", "--key-rate", "1")
    _passes(admin_gw, app, key)
    assert_problem(admin_gw.post(app, key, file=NOT_AN_IMAGE), 429, "rate_limited")
    admin(data, "apps", "set", "cli-rate", "--disable")
    assert_problem(admin_gw.post(app, file=NOT_AN_IMAGE), 503, "gateway_disabled")


def test_an_unknown_application_key_is_looked_up_again_every_time(admin_gw: Gateway) -> None:
    app_key = admin_gw.make_app("renamed-key", anon_daily_limit=5)
    elsewhere = "app_" + "L" * 24
    with admin_gw.server.db() as db, db.begin():
        applications.find_by_app_key(db, app_key).app_key = elsewhere
    assert_problem(admin_gw.post(app_key, file=NOT_AN_IMAGE), 404, "unknown_application")
    with admin_gw.server.db() as db, db.begin():
        applications.find_by_app_key(db, elsewhere).app_key = app_key
    _passes(admin_gw, app_key)


def test_without_the_quick_connection_requests_read_through_the_pool(
    tmp_path: Path, api_engine: Engine
) -> None:
    gw, stop = start_gateway(tmp_path, api_engine)
    try:
        assert gw.server.services is not None
        directory = gw.server.services.directory
        assert directory.quick
        directory.close()  # from here on every read takes a worker thread and the pool
        assert not directory.quick
        app = gw.make_app("pooled", anon_daily_limit=1)
        key = gw.make_key(app)
        _passes(gw, app, key)
        _passes(gw, app)
        assert_problem(gw.post("app_nosuchthing", file=NOT_AN_IMAGE), 404, "unknown_application")
        assert_problem(gw.post(app, "cbg_AAAAAAAA_" + "B" * 32), 401, "invalid_api_key")
        gw.server.revoke(key)
        assert_problem(gw.post(app, key, file=NOT_AN_IMAGE), 401, "invalid_api_key")
    finally:
        stop()  # type: ignore[operator]


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[tuple[Directory, str, str]]:
    url = f"sqlite:///{tmp_path / 'clearbg.db'}"
    migrate(url)
    engine = make_engine(url)
    with sessions(engine).begin() as db:
        app = key_service.create_application(db, "shop")
        applications.update_application(
            db, app, upstream="http", upstream_url="http://10.0.0.1:9", ip_per_minute=7
        )
        _, raw = key_service.create_key(
            db, app, unlimited=True, expires_at=datetime.now(UTC) + timedelta(days=1)
        )
        key_service.touch(db, key_service.find_key(db, raw))
        app_key = app.app_key
    found = Directory(engine)
    yield found, app_key, raw
    found.close()
    engine.dispose()


def test_quick_and_pooled_reads_agree(directory: tuple[Directory, str, str]) -> None:
    found, app_key, raw = directory
    assert found.quick
    quick, pooled = found.application(app_key, True), found.application(f" {app_key} ")
    assert quick == pooled
    assert (quick.name, quick.upstream, quick.ip_per_minute, quick.enabled) == (
        "shop",
        "http",
        7,
        True,
    )
    key_quick, key_pooled = found.key(raw, True), found.key(raw)
    assert key_quick == key_pooled
    assert key_quick.unlimited is True and key_quick.active is True
    assert key_quick.expires_at is not None and key_quick.expires_at.tzinfo is not None
    assert key_quick.last_used_at is not None and not key_service.needs_touch(key_quick)


@pytest.mark.parametrize("quick", [True, False])
def test_both_reads_refuse_alike(directory: tuple[Directory, str, str], quick: bool) -> None:
    from clearbg.errors import AuthError, MissingApiKeyError, UnknownApplicationError

    found, _, raw = directory
    with pytest.raises(UnknownApplicationError):
        found.application("app_nosuchthing", quick)
    with pytest.raises(AuthError, match="not valid"):
        found.key(raw[:-1] + ("A" if raw[-1] != "A" else "B"), quick)
    with pytest.raises(AuthError, match="not valid"):
        found.key("cbg_AAAAAAAA_" + "B" * 32, quick)
    with pytest.raises(MissingApiKeyError):
        found.key("", quick)


def test_a_closed_quick_connection_says_busy(directory: tuple[Directory, str, str]) -> None:
    found, app_key, _ = directory
    found.close()
    with pytest.raises(DirectoryBusyError):
        found.application(app_key, True)
    assert found.application(app_key).name == "shop"


def test_an_in_memory_database_reads_through_the_pool() -> None:
    engine = create_engine("sqlite://")
    try:
        assert not Directory(engine).quick
    finally:
        engine.dispose()
