"""A real ClearBG API server on 127.0.0.1 for each test module (uvicorn in a thread), with a
fresh SQLite database in tmp_path and the real u2netp model."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session

from clearbg.accounts import credits, keys
from clearbg.api.app import create_app
from clearbg.api.deps import Services
from clearbg.api.server import uvicorn_config
from clearbg.engine import Engine
from clearbg.settings import EngineSettings, Settings
from clearbg.store.db import make_engine, sessions
from clearbg.store.models import Application
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    settings: Settings
    app_id: int
    make_key: Callable[..., str]
    app_key: str = ""
    services: Services | None = None

    def db(self) -> Session:
        return sessions(make_engine(self.settings.database_url))()

    def balance(self, key: str) -> float:
        with self.db() as db:
            return credits.credits(keys.find_key(db, key).balance_cents)

    def revoke(self, key: str) -> None:
        with self.db() as db, db.begin():
            keys.revoke_key(db, key)

    def client(self, key: str | None = None, timeout: float = 60) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


def wait_ready(url: str, seconds: float = 30, alive: Callable[[], bool] = lambda: True) -> None:
    """Until ``url``/readyz answers 200; AssertionError after ``seconds``, RuntimeError once not
    ``alive()``."""

    def ready() -> bool:
        if not alive():
            raise RuntimeError(f"{url} exited before it was ready")
        try:
            return httpx.get(url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, seconds=seconds, what=f"{url}/readyz", every=0.05)


def start_server(
    tmp: Path, engine: Engine, **overrides: dict[str, object]
) -> tuple[Server, Callable[[], None]]:
    base = Settings()
    groups = {
        "engine": engine.settings,
        "server": base.server.model_copy(
            update={"data_dir": tmp / "data", **overrides.get("server", {})}
        ),
        "jobs": base.jobs.model_copy(update=overrides.get("jobs", {})),
        "limits": base.limits.model_copy(update=overrides.get("limits", {})),
        "credits": base.credits.model_copy(update=overrides.get("credits", {})),
        "gateway": base.gateway.model_copy(update=overrides.get("gateway", {})),
        "admin": base.admin.model_copy(update=overrides.get("admin", {})),
    }
    settings = base.model_copy(update=groups)
    app = create_app(settings, engine=engine)
    svc = app.state.services
    with svc.sessions.begin() as db:
        application = keys.create_application(db, "tests", overrides.get("app", {}).get("rate"))  # type: ignore[arg-type]
        app_id = application.id
        app_key = application.app_key

    def make_key(credits_: float = 10, **kw: object) -> str:
        with svc.sessions.begin() as db:
            a = db.get(Application, app_id)
            assert a is not None
            _, raw = keys.create_key(db, a, credits_cents=credits.cents(credits_), **kw)  # type: ignore[arg-type]
        return raw

    port = free_port()
    address = settings.server.model_copy(update={"host": "127.0.0.1", "port": port})
    server = uvicorn.Server(uvicorn_config(app, address, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return Server(url, settings, app_id, make_key, app_key, svc), stop


@pytest.fixture(scope="session")
def api_engine(engine_settings: EngineSettings) -> Iterator[Engine]:
    eng = Engine(engine_settings)
    yield eng


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Server]:
    """One server for the module, for speed: each test makes its own keys (``make_key``) and
    reads only their rows (balance, account, ledger), so no test sees another's."""
    srv, stop = start_server(tmp_path_factory.mktemp("api"), api_engine)
    yield srv
    stop()
