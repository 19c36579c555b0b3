"""The gateway's test parts: a real ClearBG server (tests/api/conftest.py's start_server), a
small PNG, and a real HTTP server on 127.0.0.1 that serves images, redirects, a huge body, a
slow answer and a page that is no image."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image, ImageDraw

from clearbg.accounts import applications
from clearbg.accounts import keys as key_service
from clearbg.engine import Engine
from tests.api.conftest import Server, api_engine, start_server


def make_png(size: tuple[int, int] = (64, 48)) -> bytes:
    im = Image.new("RGB", size, (40, 120, 200))
    ImageDraw.Draw(im).ellipse((16, 8, 48, 40), fill=(230, 200, 40))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


PNG = make_png()
BIG = 26 * 1024 * 1024
UPSTREAM_TIMEOUT = 3.0


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/img.png":
            self._send(200, PNG, "image/png")
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()  # no Content-Length: the cap must hold while reading
            chunk = b"\0" * 1024 * 1024
            try:
                for _ in range(BIG // len(chunk) + 1):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif url.path == "/slow":
            time.sleep(3)
            self._send(200, PNG, "image/png")
        elif url.path == "/page":
            self._send(200, b"<html>no image here</html>", "text/html")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        """A fake upstream for the faults a real one does not make."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/slow/v1/removebg":
            time.sleep(UPSTREAM_TIMEOUT + 1.5)
            self._send(200, PNG, "image/png")
        elif self.path == "/garbage/v1/removebg":
            self._send(200, b"<html>surprise</html>", "text/html")
        elif self.path == "/webp/v1/removebg":
            self._send(200, b"RIFF....WEBPVP8 fake bytes", "image/webp")
        else:
            self._send(500, b"upstream broke", "text/plain")

    def _send(self, status: int, body: bytes, media: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


@pytest.fixture(scope="session")
def image_host() -> Iterator[str]:
    """Base URL of a real HTTP server on 127.0.0.1."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Gateway:
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def make_app(self, name: str, **changes: object) -> str:
        """A new application with these gateway settings; its X-App-Key."""
        with self.server.db() as db, db.begin():
            app = key_service.create_application(db, name)
            applications.update_application(db, app, **changes)  # type: ignore[arg-type]
            return app.app_key

    def set_app(self, app_key: str, **changes: object) -> None:
        with self.server.db() as db, db.begin():
            app = applications.find_by_app_key(db, app_key)
            applications.update_application(db, app, **changes)  # type: ignore[arg-type]

    def make_key(self, app_key: str, credits_: float = 10, **kw: object) -> str:
        with self.server.db() as db, db.begin():
            app = applications.find_by_app_key(db, app_key)
            _, raw = key_service.create_key(db, app, credits_cents=round(credits_ * 100), **kw)  # type: ignore[arg-type]
            return raw

    def post(
        self,
        app_key: str | None,
        api_key: str | None = None,
        *,
        file: bytes | None = None,
        text: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> httpx.Response:
        h = dict(headers or {})
        if app_key is not None:
            h["X-App-Key"] = app_key
        if api_key is not None:
            h["X-Api-Key"] = api_key
        files: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = []
        if file is not None:
            files.append(("image", ("photo.png", file, "image/png")))
        if text is not None:
            files.append(("image", (None, text, None)))
        return httpx.post(
            self.url + "/api/v1/clearbg", headers=h, files=files or None, timeout=timeout
        )


def start_gateway(
    tmp: object, engine: Engine, **overrides: dict[str, object]
) -> tuple[Gateway, object]:
    gw = {
        "ip_per_minute": 0,
        "key_per_minute": 0,
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "upstream_timeout": UPSTREAM_TIMEOUT,
    }
    gw.update(overrides.pop("gateway", {}))
    server, stop = start_server(tmp, engine, gateway=gw, **overrides)  # type: ignore[arg-type]
    return Gateway(server), stop


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Gateway]:
    """One server for the module, for speed: each test makes its own application
    (``make_app``, a unique name) and keys, and reads only their rows."""
    gw, stop = start_gateway(
        tmp_path_factory.mktemp("gw"),
        api_engine,
        gateway={"fetch_allow": ["127.0.0.1/32"]},
        server={"queue_limit": 200},
    )
    yield gw
    stop()  # type: ignore[operator]


__all__ = ["api_engine"]
