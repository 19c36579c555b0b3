"""What routes depend on: the app's services, the request's ``CallContext``, the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from clearbg.accounts.directory import Directory
from clearbg.api.metrics import Metrics
from clearbg.engine import Engine
from clearbg.gateway.fetch import Fetcher
from clearbg.jobs.queue import JobQueue
from clearbg.paid.context import CallContext
from clearbg.paid.service import Caller, PaidCalls
from clearbg.settings import Settings
from clearbg.store.writer import GroupWriter


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    upstream_client: httpx.AsyncClient
    usage_writer: GroupWriter
    directory: Directory
    engine: Engine
    metrics: Metrics
    paid: PaidCalls
    queue: JobQueue
    fetcher: Fetcher
    ready: bool = False


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, for every request
    found: Services = request.app.state.services
    return found


def call_context(request: Request) -> CallContext:
    """The request's context, made by the middleware (``Observe``) for every request."""
    ctx = getattr(request.state, "call", None)
    if not isinstance(ctx, CallContext):  # an app without the middleware (never served so)
        ctx = request.state.call = CallContext(request_id="")
    return ctx


def caller(
    svc: Annotated[Services, Depends(services)],
    ctx: Annotated[CallContext, Depends(call_context)],
    x_api_key: Annotated[str | None, Header()] = None,
) -> Caller:
    """The authenticated key (401 otherwise), rate limited (429)."""
    return svc.paid.authenticate(x_api_key, ctx)


ServicesDep = Annotated[Services, Depends(services)]
ContextDep = Annotated[CallContext, Depends(call_context)]
CallerDep = Annotated[Caller, Depends(caller)]
