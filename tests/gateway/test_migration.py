"""Migration 0002 on a database made by 0001: existing applications get the gateway defaults,
and it goes back down cleanly (SQLite batch mode)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from clearbg.store.db import MIGRATIONS, make_engine


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_0002_upgrades_existing_rows_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = _config(url)
    command.upgrade(cfg, "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO applications (name, app_key, created_at) "
                "VALUES ('old', 'app_old', '2026-01-01 00:00:00')"
            )
        )
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT gateway_enabled, upstream, anon_daily_limit, credit_cost_cents,"
                " ip_per_minute FROM applications WHERE name = 'old'"
            )
        ).one()
    assert tuple(row) == (1, "local", 0, 100, None)
    columns = {c["name"] for c in inspect(engine).get_columns("usage_records")}
    assert {"client_ip_hash", "upstream_ms"} <= columns
    command.downgrade(cfg, "0001")
    assert "gateway_enabled" not in {c["name"] for c in inspect(engine).get_columns("applications")}
    assert "anonymous_usage" not in inspect(engine).get_table_names()
    engine.dispose()
