"""Engine and sessions for a database URL; Alembic migrations.

SQLite (one machine) is migrated at start-up by the process that opens it. A shared store
(PostgreSQL) is migrated once by ``clearbg migrate``; the API and worker processes only check
that its schema is current (``open_store``) and refuse to start otherwise.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from clearbg.errors import SettingsError
from clearbg.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            # writers queue at BEGIN instead of failing half-way with "database is locked";
            # sessions made by ``read_sessions`` only read and take no write lock
            if conn.get_execution_options().get("clearbg_read"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


def open_store(settings: Settings, migrate_sqlite: bool = True) -> Engine:
    """The store's engine, checked: reachable, and its schema current (SQLite is migrated
    here unless ``migrate_sqlite`` is False). ``SettingsError`` naming the setting otherwise."""
    url = settings.database_url
    if url.startswith("sqlite") and migrate_sqlite:
        migrate(url)
    db = settings.database
    try:
        engine = make_engine(url, db.pool_size, db.max_overflow)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SettingsError(f"CLEARBG_DATABASE__URL cannot be used: {_first_line(exc)}") from exc
    if not url.startswith("sqlite"):
        current, head = revisions(engine)
        if current != head:
            engine.dispose()
            raise SettingsError(
                f"the database of CLEARBG_DATABASE__URL is at schema {current or 'none'}, not "
                f"{head}: run `clearbg migrate` first"
            )
    return engine


def revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's Alembic revision, the newest one this code knows)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise SettingsError(
            f"CLEARBG_DATABASE__URL: the database cannot be reached: {_first_line(exc)}"
        ) from exc
    return current, script.get_current_head()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that only reads (no write lock on SQLite, so they never queue)."""
    return sessionmaker(engine.execution_options(clearbg_read=True), expire_on_commit=False)


def migrate(url: str) -> None:
    """Bring the database to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
