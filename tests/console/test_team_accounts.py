"""The services under the console's team features, on a real SQLite file: key rotation with a
grace period (through the gateway's own key reads too), renaming, starting credits, user
deactivation ending sessions, the audit log, the ledger read per key, latency of image
requests only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from clearbg.accounts import audit, credits, keys, ledger, users
from clearbg.accounts.directory import Directory
from clearbg.accounts.usage import BULK_IMAGE, PLAYGROUND, summarize
from clearbg.errors import AuthError, InvalidOptionError
from clearbg.store.db import make_engine, migrate, sessions
from clearbg.store.models import ApiKey, UsageRecord


@pytest.fixture
def db_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'clearbg.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(db_engine: Engine) -> sessionmaker[Session]:
    return sessions(db_engine)


def _key(factory: sessionmaker[Session], cents: int = 500) -> tuple[int, str]:
    with factory.begin() as db:
        app = keys.create_application(db, "shop")
        key, raw = keys.create_key(db, app, label="web", credits_cents=cents)
        return key.id, raw


def test_a_rotated_key_keeps_its_prefix_and_balance_and_the_old_secret_lasts_the_grace(
    factory: sessionmaker[Session], db_engine: Engine
) -> None:
    key_id, old = _key(factory)
    with factory.begin() as db:
        key = db.get(ApiKey, key_id)
        assert key is not None
        new = keys.rotate_key(key, timedelta(hours=1))
    assert new != old and new[: keys.PREFIX_LEN] == old[: keys.PREFIX_LEN]
    directory = Directory(db_engine)
    try:
        with factory() as db:
            for raw in (old, new):  # both work during the grace period, on both read paths
                assert keys.authenticate(db, raw).balance_cents == 500
                assert directory.key(raw).id == key_id
                assert directory.key(raw, quick=True).id == key_id
        # the grace period over: only the new secret works
        with factory.begin() as db:
            db.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(previous_until=datetime.now(UTC) - timedelta(seconds=1))
            )
        with factory() as db:
            assert keys.authenticate(db, new).id == key_id
            with pytest.raises(AuthError):
                keys.authenticate(db, old)
        with pytest.raises(AuthError):
            directory.key(old, quick=True)
    finally:
        directory.close()


def test_a_rotation_without_grace_stops_the_old_secret_at_once_and_a_revoked_key_cannot_rotate(
    factory: sessionmaker[Session],
) -> None:
    key_id, old = _key(factory)
    with factory.begin() as db:
        key = db.get(ApiKey, key_id)
        assert key is not None
        first = keys.rotate_key(key, timedelta(hours=24))
        second = keys.rotate_key(key, timedelta(0))  # a leak: stop every older secret now
    with factory() as db:
        assert keys.authenticate(db, second).id == key_id
        for stale in (old, first):
            with pytest.raises(AuthError, match="not valid"):
                keys.authenticate(db, stale)
    with factory.begin() as db:
        key = db.get(ApiKey, key_id)
        assert key is not None
        keys.rename_key(key, "  mobile app  ")
        assert key.label == "mobile app"
        key.active = False
        with pytest.raises(InvalidOptionError, match="revoked"):
            keys.rotate_key(key, timedelta(hours=1))


def test_deactivating_a_user_ends_their_sessions_and_refuses_sign_in_until_reactivated(
    factory: sessionmaker[Session],
) -> None:
    with factory.begin() as db:
        admin = users.create_user(db, "root@example.com", "a long password", "admin")
        member = users.create_user(db, "dev@example.com", "a long password")
        token = users.start_session(db, member, timedelta(hours=1))
        with pytest.raises(InvalidOptionError, match="yourself"):
            users.set_active(db, admin, False, by=admin)
        users.set_active(db, member, False, by=admin)
    with factory.begin() as db:
        assert users.session_user(db, token) is None
        with pytest.raises(Exception, match="wrong email or password"):
            users.sign_in(db, "dev@example.com", "a long password")
        again = users.find_user(db, "dev@example.com")
        users.set_active(db, again, True, by=admin)
    with factory.begin() as db:
        assert users.sign_in(db, "dev@example.com", "a long password").active


def test_the_audit_log_keeps_who_did_what_newest_first_per_application(
    factory: sessionmaker[Session],
) -> None:
    with factory.begin() as db:
        one = keys.create_application(db, "one")
        two = keys.create_application(db, "two")
        root = users.create_user(db, "root@example.com", "a long password", "admin")
        who = (root.id, root.email)
        audit.record(db, who, "key.created", "cbg_AAAA", "10 credits", one.id)
        audit.record(db, None, "settings.changed", "two", "upstream: local -> none", two.id)
        audit.record(db, who, "key.revoked", "cbg_AAAA", "", one.id)
        with pytest.raises(ValueError):
            audit.record(db, None, "key.stolen")
    with factory() as db:
        assert [e.action for e in audit.events(db)] == [
            "key.revoked",
            "settings.changed",
            "key.created",
        ]
        mine = audit.events(db, application_id=one.id)
        assert [(e.actor, e.target) for e in mine] == [("root@example.com", "cbg_AAAA")] * 2
        assert audit.events(db, application_id=two.id)[0].actor == "command line"


def test_the_ledger_of_a_key_names_requests_and_bulk_images_and_sums_what_was_spent(
    factory: sessionmaker[Session],
) -> None:
    key_id, _ = _key(factory, cents=1000)
    with factory.begin() as db:
        key = db.get(ApiKey, key_id)
        assert key is not None
        credits.charge(db, key, 100, "gw:abc123")
        credits.charge(db, key, 25, "req:def456")
        credits.charge(db, key, 100, "job:job_0011:3")
        credits.charge(db, key, 100, "gw:failed1")
        credits.refund(db, key, 100, "refund:gw:failed1")
        credits.add_credits(db, key, 200, "console: root@example.com")
    with factory() as db:
        lines = ledger.history(db, key_id)
        spent = ledger.spent(db, [key_id])
    assert [line.reason for line in lines] == [
        "topup",
        "refund",
        "charge",
        "charge",
        "charge",
        "charge",
        "topup",
    ]
    assert (lines[1].request_id, lines[2].request_id) == ("failed1", "failed1")
    assert (lines[3].job_id, lines[3].image) == ("job_0011", 3)
    assert lines[4].request_id == "def456" and lines[0].note.startswith("console:")
    assert lines[0].balance_after == 10 - 1 - 0.25 - 1 - 1 + 1 + 2
    assert spent == ledger.Spent(images=3, credits=2.25)


def test_latency_is_of_image_requests_only_and_a_day_without_them_has_none(
    factory: sessionmaker[Session],
) -> None:
    key_id, _ = _key(factory)
    now = datetime.now(UTC)
    with factory.begin() as db:
        for endpoint, ms in (
            ("/v1/removebg", 900.0),
            (PLAYGROUND, 1100.0),
            ("/v1/bulk/{job_id}", 4.0),  # polls of a job: fast, and not what users wait for
            ("/v1/bulk/{job_id}", 5.0),
            ("/v1/bulk/{job_id}", 6.0),
            ("/v1/account", 3.0),
            (BULK_IMAGE, 2000.0),  # an image of a job: not a request
        ):
            db.add(
                UsageRecord(
                    application_id=1,
                    api_key_id=key_id,
                    endpoint=endpoint,
                    status=200,
                    latency_ms=ms,
                    created_at=now,
                )
            )
        db.add(
            UsageRecord(
                application_id=1,
                api_key_id=key_id,
                endpoint="/v1/account",
                status=200,
                latency_ms=2.0,
                created_at=now - timedelta(days=1),
            )
        )
    with factory() as db:
        yesterday, today = summarize(db, now - timedelta(days=2), by=("day",))
    assert (today.p50_ms, today.p95_ms, today.image_requests) == (900.0, 1100.0, 2)
    assert today.requests == 6 and today.images == 3
    assert yesterday.image_requests == 0 and yesterday.requests == 1
