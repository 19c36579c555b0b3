"""Migrations 0003 (console users, memberships, sessions) and 0004 (starting credits, key
rotation, the audit log) go up on the database before them and back."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from clearbg.store.db import MIGRATIONS, make_engine


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_0003_adds_the_console_tables_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = _config(url)
    command.upgrade(cfg, "0002")
    command.upgrade(cfg, "head")
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {"users", "memberships", "console_sessions"} <= tables
    command.downgrade(cfg, "0002")
    assert not {"users", "memberships", "console_sessions"} & set(inspect(engine).get_table_names())
    engine.dispose()


def test_0004_goes_up_on_a_0003_database_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = _config(url)
    command.upgrade(cfg, "0003")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO applications (name, app_key, created_at, gateway_enabled, upstream,"
            " anon_daily_limit, credit_cost_cents) VALUES ('old', 'app_x', '2026-01-01', 1,"
            " 'local', 0, 100)"
        )
    command.upgrade(cfg, "head")
    found = inspect(engine)
    assert "audit_events" in found.get_table_names()
    assert {"previous_hash", "previous_until"} <= {c["name"] for c in found.get_columns("api_keys")}
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql(
                "SELECT starting_credits_cents FROM applications WHERE name = 'old'"
            ).scalar()
            == 1000
        )
    command.downgrade(cfg, "0003")
    found = inspect(engine)
    assert "audit_events" not in found.get_table_names()
    assert "starting_credits_cents" not in {c["name"] for c in found.get_columns("applications")}
    engine.dispose()
