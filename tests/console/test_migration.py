"""Migration 0003 (console users, memberships, sessions) goes up on a 0002 database and back."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from clearbg.store.db import MIGRATIONS, make_engine


def test_0003_adds_the_console_tables_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0002")
    command.upgrade(cfg, "head")
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {"users", "memberships", "console_sessions"} <= tables
    command.downgrade(cfg, "0002")
    assert not {"users", "memberships", "console_sessions"} & set(inspect(engine).get_table_names())
    engine.dispose()
