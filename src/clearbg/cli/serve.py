"""``clearbg serve``: the HTTP API; on its embedded defaults (SQLite, local results, in-process
engine and job consumer) one process, or ``--workers N`` processes on one port when the store,
queue and limits are shared (PostgreSQL, Redis; docs/scaling.md)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from sqlalchemy.orm import Session, sessionmaker

from clearbg.settings import Settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data folder.")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="API processes on the port.")
def serve(host: str | None, port: int | None, data_dir: Path | None, workers: int) -> None:
    """Run the ClearBG HTTP API."""
    import uvicorn

    from clearbg.api.app import build_services, create_app
    from clearbg.api.server import uvicorn_config
    from clearbg.cli.errors import fail
    from clearbg.cli.startup import load_settings
    from clearbg.errors import ClearbgError, SettingsError

    settings = load_settings()
    overrides = {"host": host, "port": port, "data_dir": data_dir}
    server = settings.server.model_copy(update={k: v for k, v in overrides.items() if v})
    settings = settings.model_copy(update={"server": server})
    if workers > 1 and settings.jobs.consumer and not settings.jobs.huey_url:
        fail(
            SettingsError(
                "CLEARBG_JOBS__CONSUMER: several API processes cannot share the SQLite job "
                "queue; set CLEARBG_JOBS__HUEY_URL=redis://... or CLEARBG_JOBS__CONSUMER=false "
                "and run one `clearbg worker`"
            )
        )
    if (workers > 1 or settings.shared) and settings.limits.storage_url.startswith("memory"):
        fail(
            SettingsError(
                "CLEARBG_LIMITS__STORAGE_URL: several API processes would each count their own "
                "rate limits in memory; set it to redis://..."
            )
        )
    try:
        if workers == 1:
            app = create_app(settings)
            _greet(settings, app.state.services.sessions)
        else:
            # the checks and the first key here, once; then the processes start
            svc = build_services(settings)
            _greet(settings, svc.sessions)
            svc.usage_writer.close()
            svc.directory.close()
    except ClearbgError as exc:
        fail(exc)
    if workers == 1:
        uvicorn.Server(uvicorn_config(app, server)).run()
    else:
        _serve_processes(settings, workers)


def _serve_processes(settings: Settings, workers: int) -> None:
    """``workers`` uvicorn processes on one port, each building its app from the environment
    (the options given here are passed on in it), their metrics summed in one folder."""
    import uvicorn

    from clearbg.api.server import ServedH11

    server = settings.server
    os.environ["CLEARBG_SERVER__HOST"] = server.host
    os.environ["CLEARBG_SERVER__PORT"] = str(server.port)
    os.environ["CLEARBG_SERVER__DATA_DIR"] = str(server.data_dir.resolve())
    with tempfile.TemporaryDirectory(prefix="clearbg-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(
            "clearbg.api.app:app_from_environment",
            factory=True,
            workers=workers,
            host=server.host,
            port=server.port,
            log_level=server.log_level,
            proxy_headers=False,
            http=ServedH11,
            lifespan="on",
            # a process importing ONNX Runtime and loading its model on a busy machine may
            # not answer the supervisor's ping within uvicorn's 5 s: it is not dead
            timeout_worker_healthcheck=60,
        )


def _greet(settings: Settings, factory: sessionmaker[Session]) -> None:
    """The first key of a new store, shown once; where the API and the console are."""
    from sqlalchemy import select

    from clearbg.accounts import credits, keys
    from clearbg.store.models import User

    server = settings.server
    with factory.begin() as db:
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
        with factory() as db:
            has_users = db.scalar(select(User.id).limit(1)) is not None
        first_admin = "clearbg admin users create you@example.com --role admin"
        hint = "" if has_users else f"; create its first admin with\n    {first_admin}"
        click.echo(f"Console on http://{server.host}:{server.port}/console{hint}")
