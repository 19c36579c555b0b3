"""The console at ``/console``: server-rendered pages (Jinja2) over the gateway services, for the
people who run ClearBG (role ``admin``) and the developers who integrate it (``member``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker

from clearbg.console import apikeys, jobs, pages, people, playground, views
from clearbg.console.auth import ConsoleContext
from clearbg.console.render import HERE, error_page
from clearbg.settings import Settings

__all__ = ["mount_console"]


def mount_console(
    app: FastAPI, settings: Settings, sessions: sessionmaker[Session], secret: str
) -> None:
    """Serve the console on ``app``; its errors become pages (``app.state.html_errors``)."""
    app.state.console = ConsoleContext.build(settings, sessions, secret)
    app.state.html_errors = error_page
    for module in (pages, apikeys, people, views, playground, jobs):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
