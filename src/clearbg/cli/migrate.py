"""``clearbg migrate``: bring the store's schema to this version's, once, before the API and
worker processes start (they only check it when the store is shared)."""

from __future__ import annotations

import click


@click.command()
def migrate() -> None:
    """Apply the database migrations (CLEARBG_DATABASE__URL)."""
    from sqlalchemy.exc import SQLAlchemyError

    from clearbg.cli.errors import fail
    from clearbg.cli.startup import load_settings
    from clearbg.errors import SettingsError
    from clearbg.store import db

    settings = load_settings()
    try:
        db.migrate(settings.database_url)
        engine = db.open_store(settings, migrate_sqlite=False)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(SettingsError(f"CLEARBG_DATABASE__URL: the database cannot be migrated: {reason}"))
    except SettingsError as exc:
        fail(exc)
    current, _ = db.revisions(engine)
    engine.dispose()
    click.echo(f"The database is at schema {current}.")
