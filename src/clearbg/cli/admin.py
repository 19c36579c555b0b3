"""``clearbg admin``: applications, API keys (the secret is shown once), credits and usage."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clearbg.cli.errors import fail
from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from clearbg.accounts.applications import Unset
    from clearbg.store.models import Application


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data folder.")
@click.pass_context
def admin(ctx: click.Context, data_dir: Path | None) -> None:
    """Applications, API keys, credits and usage."""
    ctx.obj = data_dir


@contextmanager
def _db(ctx: click.Context, creates: bool = False) -> Iterator[Session]:
    """The database of the data folder, named on stderr. Only a command that ``creates`` the
    first rows (an application, a user) may start a new one; any other refuses a folder
    without a database (the wrong directory) instead of showing it empty."""
    from sqlalchemy.engine import make_url

    from clearbg.errors import NotFoundError
    from clearbg.settings import Settings
    from clearbg.store.db import open_store, sessions

    settings = Settings()
    if ctx.obj is not None:  # --data-dir of the admin group, inherited by every subcommand
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"data_dir": ctx.obj})}
        )
    url = make_url(settings.database_url)
    folder = settings.server.data_dir.resolve()
    click.echo(f"data folder {folder}, database {url.render_as_string()}", err=True)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        if not creates:
            fail(
                NotFoundError(
                    f"no database at {url.database}: run this where `clearbg serve` keeps its "
                    "data, or pass --data-dir (or set CLEARBG_SERVER__DATA_DIR)"
                )
            )
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        factory = sessions(open_store(settings))  # a shared store is only checked, not migrated
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


_RATE_HELP = "requests per minute; 'default' uses the setting, 0 switches it off"


@dataclass(frozen=True)
class _GatewayChanges:
    """The gateway options of `apps create` and `apps set`; None: leave that setting alone."""

    rate: str | None
    enabled: bool | None
    upstream: str | None
    upstream_url: str | None
    upstream_key: str | None
    anon_daily: int | None
    ip_rate: str | None
    key_rate: str | None
    credit_cost: float | None


def _gateway_options(fn: Callable[..., None]) -> Callable[..., None]:
    """The application's gateway settings as options, handed to ``fn`` as one ``changes``."""
    names = [f.name for f in fields(_GatewayChanges)]

    @functools.wraps(fn)
    def packed(*args: object, **kwargs: object) -> None:
        changes = _GatewayChanges(**{n: kwargs.pop(n) for n in names})  # type: ignore[arg-type]
        fn(*args, changes=changes, **kwargs)

    options = [
        click.option("--rate", default=None, help="/v1 requests per minute per key, or 'default'."),
        click.option("--enable/--disable", "enabled", default=None, help="The gateway on or off."),
        click.option("--upstream", type=click.Choice(["local", "http", "none"]), default=None),
        click.option("--upstream-url", default=None, help="ClearBG API base URL ('' clears)."),
        click.option("--upstream-key", default=None, help="X-API-Key for the upstream."),
        click.option("--anon-daily", type=int, default=None, help="Anonymous images/day/IP."),
        click.option("--ip-rate", default=None, help="Gateway " + _RATE_HELP + ", per IP."),
        click.option("--key-rate", default=None, help="Gateway " + _RATE_HELP + ", per key."),
        click.option("--credit-cost", type=float, default=None, help="Credits per image."),
    ]
    command: Callable[..., None] = packed
    for option in reversed(options):
        command = option(command)
    return command


def _rate(name: str, value: str | None) -> int | Unset | None:
    from clearbg.accounts.applications import UNSET
    from clearbg.errors import InvalidOptionError

    if value is None:
        return UNSET
    if value.strip().lower() == "default":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidOptionError(name, "must be a whole number or 'default'") from None


def _apply(db: Session, app: Application, c: _GatewayChanges) -> None:
    from clearbg.accounts.applications import UNSET, update_application
    from clearbg.accounts.credits import cents

    update_application(
        db,
        app,
        rate_per_minute=_rate("rate", c.rate),
        enabled=UNSET if c.enabled is None else c.enabled,
        upstream=UNSET if c.upstream is None else c.upstream,
        upstream_url=UNSET if c.upstream_url is None else c.upstream_url,
        upstream_key=UNSET if c.upstream_key is None else c.upstream_key,
        anon_daily_limit=UNSET if c.anon_daily is None else c.anon_daily,
        ip_per_minute=_rate("ip_rate", c.ip_rate),
        key_per_minute=_rate("key_rate", c.key_rate),
        credit_cost_cents=UNSET if c.credit_cost is None else cents(c.credit_cost),
    )


def _describe(app: Application) -> str:
    from clearbg.accounts.credits import credits

    def rate(value: int | None) -> str:
        return "default" if value is None else ("off" if value == 0 else f"{value}/min")

    upstream = app.upstream + (f" {app.upstream_url}" if app.upstream == "http" else "")
    return (
        f"application {app.name} (id {app.id}), app key {app.app_key}\n"
        f"  gateway {'enabled' if app.gateway_enabled else 'disabled'}, upstream {upstream}"
        f"{' (key set)' if app.upstream_key else ''}\n"
        f"  anonymous {app.anon_daily_limit}/day per IP, throttle {rate(app.ip_per_minute)} per IP"
        f" and {rate(app.key_per_minute)} per key, {credits(app.credit_cost_cents):g} credits"
        " per image"
    )


@apps.command("create")
@click.argument("name")
@_gateway_options
@click.pass_context
def apps_create(ctx: click.Context, name: str, changes: _GatewayChanges) -> None:
    from clearbg.accounts import audit, keys

    with _db(ctx, creates=True) as db:
        app = keys.create_application(db, name)
        _apply(db, app, changes)
        audit.record(db, None, "app.created", app.name, application_id=app.id)
        click.echo(_describe(app))


@apps.command("set")
@click.argument("name")
@_gateway_options
@click.pass_context
def apps_set(ctx: click.Context, name: str, changes: _GatewayChanges) -> None:
    """Change NAME's (name or id) settings; options not given stay as they are."""
    from clearbg.accounts import audit, keys

    with _db(ctx) as db:
        app = keys.find_application(db, name)
        _apply(db, app, changes)
        audit.record(db, None, "settings.changed", app.name, _describe(app), app.id)
        click.echo(_describe(app))


@apps.command("show")
@click.argument("name")
@click.pass_context
def apps_show(ctx: click.Context, name: str) -> None:
    from clearbg.accounts import keys

    with _db(ctx) as db:
        click.echo(_describe(keys.find_application(db, name)))


@apps.command("list")
@click.pass_context
def apps_list(ctx: click.Context) -> None:
    from sqlalchemy import select

    from clearbg.store.models import Application

    table = _table("id", "name", "app key", "rate/min", "gateway", "anon/day", "cost", "created")
    with _db(ctx) as db:
        for app in db.scalars(select(Application).order_by(Application.id)):
            table.add_row(  # type: ignore[attr-defined]
                str(app.id),
                app.name,
                app.app_key,
                str(app.rate_per_minute or "default"),
                (app.upstream if app.gateway_enabled else "disabled")
                + (f" {app.upstream_url}" if app.upstream == "http" else ""),
                str(app.anon_daily_limit),
                f"{app.credit_cost_cents / 100:g}",
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
    from clearbg.accounts import audit, credits
    from clearbg.accounts import keys as service

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
        what = "unlimited" if unlimited else f"{amount:g} credits"
        audit.record(db, None, "key.created", key.prefix, what, app.id)
    click.echo(f"key {key.prefix} for {app.name}; the secret is shown only this once:\n{raw}")


@keys.command("list")
@click.argument("application", required=False)
@click.pass_context
def keys_list(ctx: click.Context, application: str | None) -> None:
    from sqlalchemy import select

    from clearbg.accounts import keys as service
    from clearbg.accounts.credits import credits
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
    from clearbg.accounts import audit
    from clearbg.accounts import keys as service

    with _db(ctx) as db:
        key = service.revoke_key(db, prefix)
        audit.record(db, None, "key.revoked", key.prefix, key.label, key.application_id)
    click.echo(f"key {key.prefix} revoked")


@admin.command("credits")
@click.argument("prefix")
@click.argument("amount", type=float)
@click.option("--note", default="")
@click.pass_context
def credits_add(ctx: click.Context, prefix: str, amount: float, note: str) -> None:
    """Add AMOUNT credits to the key with PREFIX."""
    from clearbg.accounts import audit, credits
    from clearbg.accounts import keys as service

    with _db(ctx) as db:
        key = service.find_key(db, prefix)
        balance = credits.add_credits(db, key, credits.cents(amount), note)
        what = f"{amount:g} credits"
        audit.record(db, None, "credits.added", key.prefix, what, key.application_id)
    click.echo(f"key {key.prefix}: {credits.credits(balance):g} credits")


@admin.command("usage")
@click.option("--days", type=int, default=7, show_default=True)
@click.option("--app", "application", default=None, help="Only this application (name or id).")
@click.option("--endpoint", default=None, help="Only this endpoint, e.g. /api/v1/clearbg.")
@click.pass_context
def usage(ctx: click.Context, days: int, application: str | None, endpoint: str | None) -> None:
    """Requests, images, errors by code, p50/p95 latency and credits by application, key, day."""
    from clearbg.accounts import keys as service
    from clearbg.accounts.usage import summarize

    since = datetime.now(UTC) - timedelta(days=days)
    table = _table(
        "day", "app", "key", "requests", "images", "errors", "p50 ms", "p95 ms", "credits"
    )
    with _db(ctx) as db:
        app_id = service.find_application(db, application).id if application else None
        rows = summarize(db, since, application_id=app_id, endpoint=endpoint)
    for row in rows:
        table.add_row(  # type: ignore[attr-defined]
            row.day,
            str(row.application_id or "-"),
            row.api_key or "anonymous",
            str(row.requests),
            str(row.images),
            ", ".join(f"{code} {n}" for code, n in row.errors.items()) or "-",
            f"{row.p50_ms:.0f}",
            f"{row.p95_ms:.0f}",
            f"{row.credits:g}",
        )
    _print(table)
