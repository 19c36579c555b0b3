"""The gateway in this process, `clearbg serve` in another as its `http` upstream."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from clearbg.engine import Engine
from tests.api.conftest import free_port, wait_ready
from tests.gateway.conftest import PNG, Gateway, start_gateway
from tests.gateway.test_clearbg import assert_problem

pytestmark = pytest.mark.slow  # starts a second `clearbg serve`


class Upstream:
    def __init__(self, tmp: Path, model_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CLEARBG_SERVER__DATA_DIR": str(tmp / "upstream"),
            "CLEARBG_SERVER__PORT": str(self.port),
            "CLEARBG_ENGINE__DEFAULT_MODEL": "u2netp",
            "CLEARBG_ENGINE__MODEL_DIR": str(model_dir),
            "CLEARBG_JOBS__CONSUMER": "false",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clearbg.cli", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            wait_ready(self.url, 60, alive=lambda: self.proc.poll() is None)
        except (RuntimeError, AssertionError):
            self.stop()
            raise RuntimeError("the upstream did not start:\n" + "".join(self.lines)) from None
        keys = [ln.strip() for ln in self.lines if ln.strip().startswith("cbg_")]
        assert keys, self.lines
        self.key = keys[0]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Gateway]:
    """This module's gateway waits as long for the upstream as a busy machine needs: the
    upstream's first answer loads its model (the shared fixture's 3 s timed out under load)."""
    gw, stop = start_gateway(
        tmp_path_factory.mktemp("gw"), api_engine, gateway={"upstream_timeout": 60.0}
    )
    yield gw
    stop()  # type: ignore[operator]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway) -> Iterator[Upstream]:
    up = Upstream(tmp_path_factory.mktemp("chain"), gateway.server.settings.engine.model_dir)
    yield up
    up.stop()


def test_chain_through_a_second_clearbg_serve(gateway: Gateway, upstream: Upstream) -> None:
    app = gateway.make_app("chained", upstream="http", upstream_url=upstream.url)
    gateway.set_app(app, upstream_key=upstream.key)
    key = gateway.make_key(app, credits_=5)

    resp = gateway.post(app, key, file=PNG)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(resp.content)).mode == "RGBA"
    assert gateway.server.balance(key) == 4
    account = httpx.get(upstream.url + "/v1/account", headers={"X-API-Key": upstream.key})
    assert account.json()["credits"] == 49  # the upstream charged its own key once

    # output options travel to the upstream
    small = httpx.post(
        gateway.url + "/api/v1/clearbg",
        headers={"X-App-Key": app, "X-Api-Key": key},
        files={"image": ("p.png", PNG, "image/png"), "format": (None, "webp")},
        timeout=60,
    )
    assert small.status_code == 200 and small.headers["content-type"] == "image/webp"
    assert gateway.server.balance(key) == 3

    # the upstream refuses (wrong key): 502, nothing charged here
    gateway.set_app(app, upstream_key="cbg_wrongkey_" + "x" * 32)
    assert_problem(gateway.post(app, key, file=PNG), 502, "upstream_error")
    assert gateway.server.balance(key) == 3
    gateway.set_app(app, upstream_key=upstream.key)

    upstream.stop()
    assert_problem(gateway.post(app, key, file=PNG), 502, "upstream_unreachable")
    assert gateway.server.balance(key) == 3

    gateway.set_app(app, enabled=False)
    assert_problem(gateway.post(app, key, file=PNG), 503, "gateway_disabled")
    assert gateway.server.balance(key) == 3
