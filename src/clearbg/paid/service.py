"""``PaidCalls``: the one path of a paid cut-out, whoever asks for it.

1. who pays: an API key (``authenticate``), or on the gateway an application with an end-user
   key or an anonymous client IP (``gateway_caller``); the throttles of each;
2. the input is checked (probe, model, options) before anything is counted;
3. the upstream decodes and masks, then calls ``reserve``: the key's credits, or one of the
   day's anonymous images, are taken only once the input is known to be good;
4. a failure after that gives them back (refund); a delivered result keeps them;
5. the call's facts go into its ``CallContext`` (the middleware writes the usage record), or,
   for a bulk image, a usage record in the transaction that charges it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
import httpx
from sqlalchemy.orm import Session, sessionmaker

from clearbg.accounts import credits, keys
from clearbg.accounts.applications import GatewayConfig
from clearbg.accounts.directory import Directory, DirectoryBusyError, KeyInfo
from clearbg.accounts.usage import BULK_IMAGE
from clearbg.engine import Cutout, Engine, RemoveOptions
from clearbg.engine.imageio import Probe
from clearbg.engine.limit import EngineLimit
from clearbg.errors import (
    AnonymousLimitError,
    AuthError,
    GatewayCreditsError,
    GatewayUnavailableError,
    InsufficientCreditsError,
    MissingApiKeyError,
    MissingAppKeyError,
    ModelError,
    UnknownApplicationError,
    UpstreamError,
    UpstreamNotConfiguredError,
    WrongApplicationKeyError,
)
from clearbg.gateway import anonymous
from clearbg.gateway.fetch import Fetcher
from clearbg.gateway.upstream import EngineUpstream, HttpUpstream, Upstream, UpstreamResult
from clearbg.paid.context import CallContext
from clearbg.paid.idempotency import Idempotency
from clearbg.paid.throttles import Throttles, enforce
from clearbg.settings import Settings
from clearbg.store.files import Files
from clearbg.store.models import ApiKey, Application, UsageRecord

__all__ = ["Caller", "GatewayCaller", "PaidCalls"]

T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """An API key of the AI API (``X-API-Key``) and its application."""

    key: ApiKey
    app: Application


@dataclass(frozen=True)
class GatewayCaller:
    """A gateway request: the application, the end-user key that pays (None: anonymous, on
    the client IP's daily limit)."""

    app: GatewayConfig
    key: KeyInfo | None
    ip_hash: str


class PaidCalls:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        reads: sessionmaker[Session],
        directory: Directory,
        engine: Engine,
        limit: EngineLimit,
        fetcher: Fetcher,
        upstream_client: httpx.AsyncClient,
        ip_secret: bytes,
        files: Files,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.reads = reads
        self.directory = directory
        self.engine = engine
        self.limit = limit
        self.fetcher = fetcher
        self.upstream_client = upstream_client
        self.ip_secret = ip_secret
        self.files = files
        self.trusted = anonymous.parse_networks(settings.gateway.trusted_proxies)
        self.throttles = Throttles(settings.limits.storage_url)
        self.local = EngineUpstream(engine, limit)

    # who pays ---------------------------------------------------------------------------

    def authenticate(self, raw: str | None, ctx: CallContext) -> Caller:
        """The active API key (401 otherwise), counted against its application's rate
        (429). Blocking: reads the database."""
        with self.reads() as db:
            key = keys.authenticate(db, raw)
            app = db.get(Application, key.application_id)
            if app is None:
                raise AuthError("the API key is not valid")
        if keys.needs_touch(key):
            with self.sessions.begin() as db:
                keys.touch(db, key)
        ctx.api_key_id, ctx.application_id = key.id, app.id
        per_minute = app.rate_per_minute or self.settings.limits.per_minute
        enforce(ctx, [self.throttles.take(f"key:{key.id}", per_minute)])
        return Caller(key, app)

    async def gateway_caller(
        self,
        app_key: str | None,
        api_key: str | None,
        peer: str | None,
        forwarded_for: list[str],
        ctx: CallContext,
        signed: KeyInfo | None = None,
    ) -> GatewayCaller:
        """The gateway's checks in order: X-App-Key 400, unknown application 404 (429 when
        one IP keeps guessing), throttle per IP 429, disabled or no upstream 503, X-Api-Key
        401, throttle per key 429, anonymous not allowed 401. ``signed``: a key the console
        chose for its signed-in user, in place of a secret (checked like one)."""
        ip = anonymous.client_ip(peer, forwarded_for, self.trusted)
        ip_hash = ctx.client_ip_hash = anonymous.hash_ip(self.ip_secret, ip)
        if not app_key or not app_key.strip():
            raise MissingAppKeyError("send the application key in the X-App-Key header")
        gw = self.settings.gateway
        try:
            app = await self._read(self.directory.application, app_key)
        except UnknownApplicationError:
            # guessing application keys is throttled like any other client: per IP
            enforce(ctx, [self.throttles.take(f"gw:ip:unknown:{ip_hash}", gw.ip_per_minute)])
            raise
        ctx.application_id = app.id
        own = app.ip_per_minute
        per_ip = gw.ip_per_minute if own is None else own
        windows = [self.throttles.take(f"gw:ip:{app.id}:{ip_hash}", per_ip)]
        enforce(ctx, windows)
        if not app.enabled:
            raise GatewayUnavailableError(f"the ClearBG integration of {app.name!r} is disabled")
        if app.upstream == "none" or (app.upstream == "http" and not app.upstream_url):
            raise UpstreamNotConfiguredError(f"no upstream is configured for {app.name!r}")
        key = None
        if signed is not None:
            key = keys.usable(signed)
            if key.application_id != app.id:
                raise WrongApplicationKeyError("the key belongs to another application")
        elif api_key is not None:
            key = await self._gateway_key(app, api_key)
        if key is not None:
            ctx.api_key_id = key.id
            own = app.key_per_minute
            per_minute = gw.key_per_minute if own is None else own
            windows.append(self.throttles.take(f"gw:key:{key.id}", per_minute))
            enforce(ctx, windows)
        elif app.anon_daily_limit <= 0:
            raise MissingApiKeyError(f"{app.name!r} takes no anonymous requests; send X-Api-Key")
        return GatewayCaller(app, key, ip_hash)

    async def application_id(self, app_key: str) -> int | None:
        """The application an X-App-Key names, if any (for a request refused before its
        route ran, so its usage record still says whose it was)."""
        try:
            return (await self._read(self.directory.application, app_key)).id
        except UnknownApplicationError:
            return None

    async def _read(self, find: Callable[[str, bool], T], value: str) -> T:
        """A directory read: on the event loop when SQLite answers at once (microseconds),
        else through the pool in a worker thread."""
        if self.directory.quick:
            try:
                return find(value, True)
            except DirectoryBusyError:
                pass
        return await anyio.to_thread.run_sync(find, value, False)

    async def _gateway_key(self, app: GatewayConfig, raw: str) -> KeyInfo:
        try:
            key = await self._read(self.directory.key, raw)
        except MissingApiKeyError as exc:  # an empty X-Api-Key header is a wrong key
            raise AuthError("the X-Api-Key is empty") from exc
        if key.application_id != app.id:
            raise WrongApplicationKeyError("the X-Api-Key belongs to another application")
        if keys.needs_touch(key):
            await anyio.to_thread.run_sync(self._touch, key)
        return key

    def _touch(self, key: KeyInfo) -> None:
        with self.sessions.begin() as db:
            keys.touch(db, key)

    # the paid call ----------------------------------------------------------------------

    def idempotency(self, caller: Caller, header: str | None, fingerprint: str) -> Idempotency:
        return Idempotency(self.sessions, self.files, caller.key.id, header, fingerprint)

    def cost(self, options: RemoveOptions) -> int:
        c = self.settings.credits
        return credits.cents(c.preview if options.size == "preview" else c.full)

    def probe(self, data: bytes, options: RemoveOptions) -> Probe:
        """The input's header and the model, checked before anything is counted."""
        probe = self.engine.probe(data)
        self.engine.store.spec(options.model or self.settings.engine.default_model)
        return probe

    async def remove(
        self, caller: Caller, data: bytes, options: RemoveOptions, ctx: CallContext
    ) -> Cutout:
        """One cut-out on the local engine, charged to the caller's key when delivered."""
        ctx.bytes_in = len(data)
        probe = self.probe(data, options)
        cost = 0 if caller.key.unlimited else self.cost(options)
        reference = f"req:{ctx.request_id}"

        def take() -> None:
            with self.sessions.begin() as db:
                credits.charge(db, caller.key, cost, reference)

        def give_back() -> None:
            with self.sessions.begin() as db:
                credits.refund(db, caller.key, cost, f"refund:{reference}")

        result = await _reserved(self.local, probe, options, ctx, take, give_back)
        ctx.credits_cents = cost
        if result.cutout is None:  # the local engine always gives its cut-out
            raise UpstreamError("the engine gave no cut-out")
        return result.cutout

    @asynccontextmanager
    async def delivering(self, caller: Caller, ctx: CallContext) -> AsyncIterator[None]:
        """The work between ``remove``'s charge and the answer (compositing, storing the
        replay): if it fails, the charge is given back, so failed work is never billed."""
        try:
            yield
        except BaseException:
            cost, ctx.credits_cents = ctx.credits_cents, 0
            if cost:

                def give_back() -> None:
                    with self.sessions.begin() as db:
                        credits.refund(db, caller.key, cost, f"refund:req:{ctx.request_id}")

                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(give_back)
            raise

    async def gateway_remove(
        self, caller: GatewayCaller, data: bytes, options: RemoveOptions, ctx: CallContext
    ) -> UpstreamResult:
        """One gateway image from the application's upstream: the key's credits (403 when
        short) or one of the day's anonymous images (429), given back if it fails."""
        ctx.bytes_in = len(data)
        probe = self.probe(data, options)
        app, key = caller.app, caller.key
        cost = 0 if key is None or key.unlimited else app.credit_cost_cents
        reference = f"gw:{ctx.request_id}"
        day = anonymous.today()

        def take() -> None:
            if key is not None:
                try:
                    with self.sessions.begin() as db:
                        credits.charge(db, _stored(db, key), cost, reference)
                except InsufficientCreditsError as exc:
                    raise GatewayCreditsError(exc.message) from exc
                return
            with self.sessions.begin() as db:
                taken = anonymous.take(db, app.id, caller.ip_hash, app.anon_daily_limit, day)
            if not taken:
                raise AnonymousLimitError(
                    f"the anonymous limit of {app.anon_daily_limit} images a day is spent; "
                    "send X-Api-Key or come back after 00:00 UTC",
                    retry_after=anonymous.seconds_to_midnight(),
                )

        def give_back() -> None:
            with self.sessions.begin() as db:
                if key is not None:
                    credits.refund(db, _stored(db, key), cost, f"refund:{reference}")
                else:
                    anonymous.give_back(db, app.id, caller.ip_hash, day)

        try:
            result = await _reserved(self.upstream_for(app), probe, options, ctx, take, give_back)
        except ModelError as exc:
            raise UpstreamError(f"the local engine cannot work: {exc.message}") from exc
        ctx.credits_cents = cost
        ctx.upstream_ms = result.upstream_ms
        return result

    def upstream_for(self, app: GatewayConfig) -> Upstream:
        if app.upstream == "http" and app.upstream_url:
            gw = self.settings.gateway
            return HttpUpstream(
                self.upstream_client,
                app.upstream_url,
                app.upstream_key,
                gw.upstream_timeout,
                gw.connect_timeout,
            )
        return self.local

    # bulk images ------------------------------------------------------------------------

    async def check_job(
        self, caller: Caller, options: RemoveOptions, callback_url: str | None
    ) -> None:
        """Before a bulk job is stored: its model, its callback URL (the image-URL guard) and
        credits for at least one image."""
        self.engine.store.spec(options.model or self.settings.engine.default_model)
        if callback_url is not None:
            await anyio.to_thread.run_sync(self.fetcher.check, callback_url)
        if not caller.key.unlimited and caller.key.balance_cents < self.cost(options):
            raise InsufficientCreditsError("the key has not enough credits for one image")

    def job_image(
        self,
        key_id: int,
        data: bytes,
        options: RemoveOptions,
        reference: str,
        deliver: Callable[[Session, Cutout, int], bool],
        threads: int | None = None,
    ) -> bool:
        """One bulk image, on the calling worker thread, inside the engine's limit; then one
        transaction: ``deliver(db, cutout, cents)`` (False: the job is cancelled, nothing is
        charged), the charge (unique ``reference``) and the usage record. Bad input raises
        before any credit moves; short credits raise ``InsufficientCreditsError``."""
        started = time.perf_counter()
        probe = self.probe(data, options)
        w, h = probe.size
        with self.limit.hold(w * h):
            cut = self.engine.remove(probe, options, threads=threads)
        cost = self.cost(options)
        with self.sessions.begin() as db:
            key = db.get(ApiKey, key_id)
            if key is None:
                raise AuthError("the job's API key is gone")
            charged = 0 if key.unlimited else cost
            if not deliver(db, cut, charged):
                return False
            credits.charge(db, key, cost, reference)
            db.add(
                UsageRecord(
                    application_id=key.application_id,
                    api_key_id=key.id,
                    endpoint=BULK_IMAGE,
                    status=200,
                    credits_cents=charged,
                    bytes_in=len(data),
                    bytes_out=len(cut.data),
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            )
        return True


async def _reserved(
    upstream: Upstream,
    probe: Probe,
    options: RemoveOptions,
    ctx: CallContext,
    take: Callable[[], None],
    give_back: Callable[[], None],
) -> UpstreamResult:
    """The upstream's result; what ``take`` reserved is given back if it fails after that."""
    taken = False

    def reserve() -> None:
        nonlocal taken
        take()
        taken = True

    try:
        return await upstream.remove(probe, options, ctx.request_id, reserve)
    except BaseException:
        if taken:
            with anyio.CancelScope(shield=True):  # a client that went away still gets it back
                await anyio.to_thread.run_sync(give_back)
        raise


def _stored(db: Session, key: KeyInfo) -> ApiKey:
    """The key's row, read in the transaction that changes its balance."""
    stored = db.get(ApiKey, key.id)
    if stored is None:  # keys are revoked, never deleted; a database edited by hand may differ
        raise AuthError("the API key is not valid")
    return stored
