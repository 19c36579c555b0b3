"""What routes depend on: the app's services, the database session, the caller's API key."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
import httpx
from fastapi import Depends, Header, Request
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session, sessionmaker

from clearbg.accounts import keys
from clearbg.accounts.directory import Directory
from clearbg.api.metrics import Metrics
from clearbg.api.windows import MemoryWindows
from clearbg.engine import Engine
from clearbg.errors import OverloadedError, RateLimitedError
from clearbg.gateway.anonymous import Network
from clearbg.gateway.fetch import Fetcher
from clearbg.jobs.queue import JobQueue
from clearbg.settings import Settings
from clearbg.store.models import ApiKey, Application
from clearbg.store.writer import GroupWriter

T = TypeVar("T")


class EngineSlots:
    """At most ``slots`` photos in the engine at once, and at most ``pixel_budget`` of their
    pixels (one photo larger than the budget still runs, alone); up to ``queue`` more wait;
    then 503. A burst of 24 MP uploads thus runs them one by one instead of exhausting memory,
    while small photos still run ``slots`` at a time."""

    def __init__(self, slots: int, queue: int, metrics: Metrics, pixel_budget: int) -> None:
        self.slots = slots
        self.capacity = slots + queue
        self.pixel_budget = pixel_budget
        self.inside = 0
        self.running = 0
        self.pixels = 0
        self.metrics = metrics
        self._changed = asyncio.Condition()
        self._threads = anyio.CapacityLimiter(slots)

    def _fits(self, pixels: int) -> bool:
        if self.running >= self.slots:
            return False
        return self.running == 0 or self.pixels + pixels <= self.pixel_budget

    async def run(self, fn: Callable[[], T], pixels: int = 0) -> T:
        if self.inside >= self.capacity:
            raise OverloadedError("the server is busy; try again shortly", retry_after=2)
        self.inside += 1
        self.metrics.queue_depth.labels("requests").set(self.inside)
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self._fits(pixels))
                self.running += 1
                self.pixels += pixels
            try:
                return await anyio.to_thread.run_sync(fn, limiter=self._threads)
            finally:
                async with self._changed:
                    self.running -= 1
                    self.pixels -= pixels
                    self._changed.notify_all()
        finally:
            self.inside -= 1
            self.metrics.queue_depth.labels("requests").set(self.inside)


@dataclass(frozen=True)
class Window:
    """One rate limit after a hit: allowed or not, and what the X-RateLimit-* headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset)),
        }

    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset - time.time()))


class RateLimits:
    """Requests per minute per key, in moving windows: in process memory by default
    (``MemoryWindows``), in ``limits``' storage when one is configured (Redis: shared by every
    server process)."""

    def __init__(self, storage_url: str, default_per_minute: int) -> None:
        self.limiter: MemoryWindows | MovingWindowRateLimiter = (
            MemoryWindows(60)
            if storage_url.startswith("memory://")
            else MovingWindowRateLimiter(storage_from_string(storage_url))
        )
        self.default = default_per_minute

    def take(self, ident: str, per_minute: int) -> Window:
        """Count one request against ``per_minute`` for ``ident``."""
        if isinstance(self.limiter, MemoryWindows):
            allowed, remaining, reset = self.limiter.hit(ident, per_minute)
            return Window(allowed, per_minute, remaining, reset)
        item = RateLimitItemPerMinute(per_minute)
        allowed = self.limiter.hit(item, ident)
        reset, remaining = self.limiter.get_window_stats(item, ident)
        return Window(allowed, item.amount, remaining, reset)

    def hit(self, request: Request, ident: str, per_minute: int | None) -> None:
        """Count a request; put the X-RateLimit-* headers on the response; 429 when over."""
        window = self.take(ident, per_minute or self.default)
        request.state.extra_headers = window.headers()
        if not window.allowed:
            raise RateLimitedError(
                f"more than {window.limit} requests per minute", retry_after=window.retry_after()
            )


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]
    upstream_client: httpx.AsyncClient
    usage_writer: GroupWriter
    directory: Directory
    engine: Engine
    metrics: Metrics
    slots: EngineSlots
    limits: RateLimits
    queue: JobQueue
    fetcher: Fetcher
    ip_secret: bytes
    trusted_proxies: list[Network]
    ready: bool = False


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, for every request
    found: Services = request.app.state.services
    return found


def db_session(svc: Annotated[Services, Depends(services)]) -> Iterator[Session]:
    with svc.sessions() as db:
        yield db


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    app: Application


def caller(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    x_api_key: Annotated[str | None, Header()] = None,
) -> Caller:
    """The authenticated key (401 otherwise), rate limited (429), headers set on the response."""
    with svc.reads() as db:
        key = keys.authenticate(db, x_api_key)
        app = db.get(Application, key.application_id)
        assert app is not None
    if keys.needs_touch(key):
        with svc.sessions.begin() as db:
            keys.touch(db, key)
    request.state.api_key_id = key.id
    request.state.application_id = app.id
    svc.limits.hit(request, f"key:{key.id}", app.rate_per_minute)
    return Caller(key, app)


ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Caller, Depends(caller)]
