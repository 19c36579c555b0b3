"""``clearbg admin``: applications, API keys (the secret is shown once), credits and usage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clearbg.cli.errors import fail
from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data folder.")
@click.pass_context
def admin(ctx: click.Context, data_dir: Path | None) -> None:
    """Applications, API keys, credits and usage."""
    ctx.obj = data_dir


@contextmanager
def _db(ctx: click.Context) -> Iterator[Session]:
    from clearbg.settings import Settings
    from clearbg.store.db import make_engine, migrate, sessions

    settings = Settings()
    if ctx.obj is not None:  # --data-dir of the admin group, inherited by every subcommand
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"data_dir": ctx.obj})}
        )
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    factory = sessions(make_engine(settings.database_url))
    try:
        with factory.begin() as db:
            yield db
    except ClearbgError as exc:
        fail(exc)


def _table(*columns: str) -> object:
    from rich.table import Table

    return Table(*columns)


def _print(table: object) -> None:
    from rich.console import Console

    Console().print(table)


@admin.group()
def apps() -> None:
    """Applications."""


@apps.command("create")
@click.argument("name")
@click.option("--rate", type=int, default=None, help="Requests per minute per key.")
@click.pass_context
def apps_create(ctx: click.Context, name: str, rate: int | None) -> None:
    from clearbg.gateway import keys

    with _db(ctx) as db:
        app = keys.create_application(db, name, rate)
        click.echo(f"application {app.name} (id {app.id}), app key {app.app_key}")


@apps.command("list")
@click.pass_context
def apps_list(ctx: click.Context) -> None:
    from sqlalchemy import select

    from clearbg.store.models import Application

    table = _table("id", "name", "app key", "rate/min", "created")
    with _db(ctx) as db:
        for app in db.scalars(select(Application).order_by(Application.id)):
            table.add_row(  # type: ignore[attr-defined]
                str(app.id),
                app.name,
                app.app_key,
                str(app.rate_per_minute or "default"),
                f"{app.created_at:%Y-%m-%d}",
            )
    _print(table)


@admin.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.argument("application")
@click.option("--label", default="")
@click.option("--credits", "amount", type=float, default=0.0, help="Starting credits.")
@click.option("--unlimited", is_flag=True, help="Never runs out of credits.")
@click.option("--expires-days", type=float, default=None, help="Expire after this many days.")
@click.pass_context
def keys_create(
    ctx: click.Context,
    application: str,
    label: str,
    amount: float,
    unlimited: bool,
    expires_days: float | None,
) -> None:
    """Create a key for APPLICATION (name or id); its secret is shown only now."""
    from clearbg.gateway import credits
    from clearbg.gateway import keys as service

    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    with _db(ctx) as db:
        app = service.find_application(db, application)
        key, raw = service.create_key(
            db,
            app,
            label=label,
            credits_cents=credits.cents(amount),
            unlimited=unlimited,
            expires_at=expires,
        )
    click.echo(f"key {key.prefix} for {app.name}; the secret is shown only this once:\n{raw}")


@keys.command("list")
@click.argument("application", required=False)
@click.pass_context
def keys_list(ctx: click.Context, application: str | None) -> None:
    from sqlalchemy import select

    from clearbg.gateway import keys as service
    from clearbg.gateway.credits import credits
    from clearbg.store.models import ApiKey

    table = _table("prefix", "app", "label", "active", "credits", "expires", "last used")
    with _db(ctx) as db:
        query = select(ApiKey).order_by(ApiKey.id)
        if application:
            query = query.where(
                ApiKey.application_id == service.find_application(db, application).id
            )
        for key in db.scalars(query):
            table.add_row(  # type: ignore[attr-defined]
                key.prefix,
                str(key.application_id),
                key.label,
                "yes" if key.active else "revoked",
                "unlimited" if key.unlimited else f"{credits(key.balance_cents):g}",
                f"{key.expires_at:%Y-%m-%d}" if key.expires_at else "-",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "-",
            )
    _print(table)


@keys.command("revoke")
@click.argument("prefix")
@click.pass_context
def keys_revoke(ctx: click.Context, prefix: str) -> None:
    from clearbg.gateway import keys as service

    with _db(ctx) as db:
        key = service.revoke_key(db, prefix)
    click.echo(f"key {key.prefix} revoked")


@admin.command("credits")
@click.argument("prefix")
@click.argument("amount", type=float)
@click.option("--note", default="")
@click.pass_context
def credits_add(ctx: click.Context, prefix: str, amount: float, note: str) -> None:
    """Add AMOUNT credits to the key with PREFIX."""
    from clearbg.gateway import credits
    from clearbg.gateway import keys as service

    with _db(ctx) as db:
        key = service.find_key(db, prefix)
        balance = credits.add_credits(db, key, credits.cents(amount), note)
    click.echo(f"key {key.prefix}: {credits.credits(balance):g} credits")


@admin.command("usage")
@click.option("--days", type=int, default=7, show_default=True)
@click.pass_context
def usage(ctx: click.Context, days: int) -> None:
    """Requests, images, errors and credits by application, key and day."""
    from sqlalchemy import func, select

    from clearbg.gateway.credits import credits
    from clearbg.store.models import UsageRecord

    since = datetime.now(UTC) - timedelta(days=days)
    table = _table("day", "app", "key", "requests", "images", "errors", "credits")
    day = func.date(UsageRecord.created_at)
    with _db(ctx) as db:
        rows = db.execute(
            select(
                day,
                UsageRecord.application_id,
                UsageRecord.api_key_id,
                func.count(),
                func.count().filter(UsageRecord.status == 200),
                func.count().filter(UsageRecord.status >= 400),
                func.coalesce(func.sum(UsageRecord.credits_cents), 0),
            )
            .where(UsageRecord.created_at >= since)
            .group_by(day, UsageRecord.application_id, UsageRecord.api_key_id)
            .order_by(day)
        ).all()
    for d, app_id, key_id, n, ok, bad, spent in rows:
        table.add_row(  # type: ignore[attr-defined]
            str(d),
            str(app_id or "-"),
            str(key_id or "-"),
            str(n),
            str(ok),
            str(bad),
            f"{credits(int(spent)):g}",
        )
    _print(table)
