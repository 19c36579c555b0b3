"""``clearbg serve``: the HTTP API on its embedded defaults (SQLite, local results, in-process
engine and job consumer)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data folder.")
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the ClearBG HTTP API."""
    import uvicorn

    from clearbg.accounts import credits, keys
    from clearbg.api.app import create_app
    from clearbg.api.server import uvicorn_config
    from clearbg.settings import Settings

    settings = Settings()
    server = settings.server.model_copy(
        update={
            k: v
            for k, v in {"host": host, "port": port, "data_dir": data_dir}.items()
            if v is not None
        }
    )
    settings = settings.model_copy(update={"server": server})
    app = create_app(settings)
    with app.state.services.sessions.begin() as db:
        first = keys.ensure_first_key(db, credits.cents(settings.credits.first_key_credits))
        app_key = keys.find_application(db, "default").app_key if first else ""
    if first:
        click.echo(
            f"Created application 'default' with an API key ({settings.credits.first_key_credits:g}"
            f" credits). It is shown only this once:\n\n    {first}\n\n"
            f"The application's X-App-Key (for /api/v1/clearbg) is {app_key}\n"
        )
    click.echo(f"ClearBG API on http://{server.host}:{server.port} (docs at /docs)")
    if settings.console.enabled:
        from sqlalchemy import select

        from clearbg.store.models import User

        with app.state.services.sessions() as db:
            has_users = db.scalar(select(User.id).limit(1)) is not None
        first_admin = "clearbg admin users create you@example.com --role admin"
        hint = "" if has_users else f"; create its first admin with\n    {first_admin}"
        click.echo(f"Console on http://{server.host}:{server.port}/console{hint}")
    uvicorn.Server(uvicorn_config(app, server)).run()
