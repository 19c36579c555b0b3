"""A real HTTP server on 127.0.0.1 that serves the shared photos (for ``image_url`` fields)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import PHOTOS


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def photo_host() -> Iterator[str]:
    """The base URL of a server whose paths are the files of tests' PHOTOS folder."""
    handler = functools.partial(_Quiet, directory=str(PHOTOS))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
