"""Who calls the gateway: an application by its X-App-Key, an API key by its prefix.

Both are read on every request, never cached, so a key revoked or an application disabled (by
the admin API, by ``clearbg admin`` in another process, or straight in the database) counts
from the next request. On a SQLite file each read is one indexed SELECT on a connection of its
own: a few microseconds, and WAL readers never wait for writers, so the gateway runs them on
the event loop (``quick=True``) instead of paying a worker thread and an ORM session per read.
When that connection cannot answer at once (another thread holds it, SQLite says busy) it
raises ``DirectoryBusyError`` and the caller reads through the pool in a worker thread; so does
any other database (PostgreSQL: a network round trip has no place on the event loop).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, bindparam, select

from clearbg.accounts import keys
from clearbg.accounts.applications import GatewayConfig
from clearbg.errors import MissingApiKeyError, UnknownApplicationError
from clearbg.store.models import ApiKey, Application

__all__ = ["Directory", "DirectoryBusyError", "KeyInfo"]


class DirectoryBusyError(Exception):
    """The quick connection cannot answer without waiting: read through the pool instead.
    (Not a ``ClearbgError``: the caller handles it, no client ever sees it.)"""


@dataclass(frozen=True)
class KeyInfo:
    """What the gateway needs of an API key (its balance is read where it is charged)."""

    id: int
    application_id: int
    secret_hash: str
    active: bool
    expires_at: datetime | None
    unlimited: bool
    last_used_at: datetime | None
    previous_hash: str | None = None
    previous_until: datetime | None = None


_APPLICATION = select(
    Application.id,
    Application.name,
    Application.gateway_enabled,
    Application.upstream,
    Application.upstream_url,
    Application.upstream_key,
    Application.anon_daily_limit,
    Application.ip_per_minute,
    Application.key_per_minute,
    Application.credit_cost_cents,
).where(Application.app_key == bindparam("value"))  # the order of GatewayConfig's fields

_KEY = select(
    ApiKey.id,
    ApiKey.application_id,
    ApiKey.secret_hash,
    ApiKey.active,
    ApiKey.expires_at,
    ApiKey.unlimited,
    ApiKey.last_used_at,
    ApiKey.previous_hash,
    ApiKey.previous_until,
).where(ApiKey.prefix == bindparam("value"))  # the order of KeyInfo's fields


class _Query:
    """One statement: for the pool as it is, for the quick connection as SQL text plus the
    column types' own converters (0/1 to bool, text to aware datetimes), so both agree."""

    def __init__(self, statement: Select[*tuple[Any, ...]], engine: Engine) -> None:
        self.statement = statement
        self.sql = str(statement.compile(dialect=engine.dialect))
        self.convert: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None)
            for column in statement.selected_columns
        ]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(v if f is None else f(v) for f, v in zip(self.convert, raw, strict=True))


class Directory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(clearbg_read=True)  # a plain BEGIN: no write lock
        self._application = _Query(_APPLICATION, engine)
        self._key = _Query(_KEY, engine)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        path = engine.url.database
        if engine.dialect.name == "sqlite" and path and path != ":memory:":
            # autocommit (each SELECT its own read transaction, so it sees every commit before
            # it), no busy wait (the pool waits instead), read only
            self._conn = sqlite3.connect(
                path, timeout=0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA query_only = ON")

    @property
    def quick(self) -> bool:
        """Whether reads can run on the event loop (a SQLite file)."""
        return self._conn is not None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def application(self, app_key: str, quick: bool = False) -> GatewayConfig:
        """The gateway settings of the application with this X-App-Key, or 404."""
        row = self._one(self._application, app_key.strip(), quick)
        if row is None:
            raise UnknownApplicationError("no application matches the X-App-Key value")
        return GatewayConfig(*row)

    def key(self, raw: str | None, quick: bool = False) -> KeyInfo:
        """The active key for a presented secret, or AuthError (``keys.authenticate``'s rules)."""
        if not raw:
            raise MissingApiKeyError("send your API key in the X-API-Key header")
        raw = raw.strip()
        row = self._one(self._key, raw[: keys.PREFIX_LEN], quick)
        return keys.verify(None if row is None else KeyInfo(*row), raw)

    def _one(self, query: _Query, value: str, quick: bool) -> tuple[Any, ...] | None:
        if not quick:
            with self._engine.connect() as conn:
                found = conn.execute(query.statement, {"value": value}).first()
            return None if found is None else tuple(found)
        if self._conn is None or not self._lock.acquire(blocking=False):
            raise DirectoryBusyError
        try:
            rows = self._conn.execute(query.sql, (value,)).fetchall()  # all: the statement resets
        except sqlite3.Error as exc:  # busy, locked, or worse: the pool's read says which
            raise DirectoryBusyError from exc
        finally:
            self._lock.release()
        return query.row(rows[0]) if rows else None
