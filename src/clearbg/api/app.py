"""``create_app(settings)``: the ClearBG AI API. No module-level app: tests build their own."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from clearbg import __version__
from clearbg.accounts.directory import Directory
from clearbg.api import problems
from clearbg.api.bodies import Bodies
from clearbg.api.deps import Services
from clearbg.api.metrics import Metrics
from clearbg.api.middleware import Observe
from clearbg.api.routes import account, admin, compat, gateway, health, removebg
from clearbg.api.routes import bulk as bulk_routes
from clearbg.engine import Engine
from clearbg.engine.limit import EngineLimit
from clearbg.gateway.fetch import Fetcher, FetchPolicy
from clearbg.jobs import bulk
from clearbg.jobs.queue import JobQueue, ttl
from clearbg.paid.service import PaidCalls
from clearbg.settings import Settings
from clearbg.store.db import open_store, read_sessions, sessions
from clearbg.store.files import make_files
from clearbg.store.models import UsageRecord
from clearbg.store.writer import GroupWriter

log = logging.getLogger("clearbg.api")


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Everything a process of the API or a worker needs, each part checked: a database,
    Redis or bucket it cannot use stops it here with a ``SettingsError`` naming the setting."""
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    files = make_files(settings)
    files.check()
    db_engine = open_store(settings)  # SQLite: migrated; PostgreSQL: checked current
    metrics = Metrics()
    factory = sessions(db_engine)
    engine = engine or Engine(settings.engine)
    gw = settings.gateway
    depth = metrics.queue_depth.labels("requests")
    limit = EngineLimit(
        settings.server.engine_slots,
        settings.server.queue_limit,
        int(settings.server.engine_megapixels * 1_000_000),
        on_depth=depth.set,
    )
    fetcher = Fetcher(
        FetchPolicy(
            connect_timeout=gw.connect_timeout,
            read_timeout=gw.read_timeout,
            total_timeout=gw.connect_timeout + 4 * gw.read_timeout,
            max_bytes=int(settings.server.upload_limit_mb * 1024 * 1024),
            max_redirects=gw.max_redirects,
            allow=tuple(gw.fetch_allow),
        )
    )
    directory = Directory(db_engine)
    upstream_client = httpx.AsyncClient(
        trust_env=False, limits=httpx.Limits(max_keepalive_connections=32)
    )
    paid = PaidCalls(
        settings,
        factory,
        read_sessions(db_engine),
        directory,
        engine,
        limit,
        fetcher,
        upstream_client,
        _secret(settings, settings.gateway.ip_hash_secret, "ip-hash.secret").encode(),
        files,
    )
    ctx = bulk.JobContext(
        sessions=factory,
        paid=paid,
        files=files,
        ttl=ttl(settings),
        side_by_side=settings.jobs.side_by_side or None,
    )
    queue = JobQueue(settings, ctx, _callback_secret(settings), fetcher)
    queue.check()
    return Services(
        settings=settings,
        sessions=factory,
        usage_writer=GroupWriter(db_engine, UsageRecord.__table__),  # type: ignore[arg-type]
        directory=directory,
        upstream_client=upstream_client,
        engine=engine,
        metrics=metrics,
        paid=paid,
        queue=queue,
        fetcher=fetcher,
    )


def _callback_secret(settings: Settings) -> str:
    """The HMAC key for callbacks: the setting, or one made once per data folder."""
    return _secret(settings, settings.jobs.callback_secret, "callback.secret")


def _secret(settings: Settings, configured: str, filename: str) -> str:
    """A configured secret, or one made once per data folder."""
    if configured:
        return configured
    path = settings.server.data_dir / filename
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _load_model(svc: Services) -> None:
    try:
        svc.engine.session()
    except Exception:
        log.exception("the default model could not be loaded")
        return
    svc.ready = True
    try:
        # then its companion (about 0.3 s more): a request that comes first waits for it; a
        # companion that is not downloaded is a warning (the engine logs it), not a failure
        svc.engine.companion()
    except Exception:
        log.exception("the default model's companion could not be loaded")


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The API app; an ``engine`` passed in is shared and stays open when the app stops."""
    svc = build_services(settings, engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_load_model, args=(svc,), daemon=True).start()
        if settings.jobs.consumer:
            svc.queue.start_consumer()
        yield
        await svc.upstream_client.aclose()
        svc.usage_writer.close()
        svc.directory.close()
        svc.queue.stop_consumer()
        svc.metrics.close()
        if engine is None:
            svc.engine.close()

    app = FastAPI(
        title="ClearBG AI API",
        version=__version__,
        description="Remove the background of photos: one at a time or in bulk jobs.",
        lifespan=lifespan,
    )
    app.state.services = svc
    problems.install(app)
    app.include_router(removebg.router)
    app.include_router(compat.router)
    app.include_router(bulk_routes.router)
    app.include_router(account.router)
    app.include_router(gateway.router)
    app.include_router(admin.router)
    app.include_router(health.router)
    if settings.console.enabled:
        from clearbg.console import mount_console

        secret = _secret(settings, settings.console.secret, "console.secret")
        mount_console(app, settings, svc.sessions, secret)
    # the last added runs first: Observe sees every answer, Bodies' own included
    app.add_middleware(Bodies, server=settings.server, trusted=svc.paid.trusted)
    app.add_middleware(Observe, services=lambda: svc, paths=lambda: list(app.openapi()["paths"]))
    return app


def app_from_environment() -> FastAPI:
    """The app of one ``clearbg serve --workers N`` process: settings from the environment."""
    from clearbg.api.server import ServedH11

    settings = Settings()
    ServedH11.header_timeout = settings.server.header_timeout
    return create_app(settings)
