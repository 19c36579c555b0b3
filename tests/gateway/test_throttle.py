"""The settings' default throttles: applications that set none use them, and guessing
application keys is throttled per IP too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clearbg.engine import Engine
from tests.gateway.conftest import PNG, Gateway, start_gateway
from tests.gateway.test_clearbg import assert_problem


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Gateway]:
    """One server for the module, for speed: each test makes its own application (throttles
    count per application; unknown application keys have a window of their own)."""
    gw, stop = start_gateway(
        tmp_path_factory.mktemp("tight"), api_engine, gateway={"ip_per_minute": 3}
    )
    yield gw
    stop()  # type: ignore[operator]


def test_guessing_application_keys_is_throttled(tight: Gateway) -> None:
    for n in range(3):
        resp = tight.post(f"app_guess{n}", file=PNG)
        assert_problem(resp, 404, "unknown_application")
        assert resp.headers["x-ratelimit-remaining"] == str(2 - n)
    resp = tight.post("app_guess4", file=PNG)
    assert_problem(resp, 429, "rate_limited")
    assert int(resp.headers["retry-after"]) >= 1


def test_an_application_without_its_own_throttle_uses_the_setting(tight: Gateway) -> None:
    app = tight.make_app("default-throttle", anon_daily_limit=10)
    for _ in range(3):
        assert_problem(tight.post(app, file=b"nope"), 400, "not_an_image")
    assert_problem(tight.post(app, file=PNG), 429, "rate_limited")
    tight.set_app(app, ip_per_minute=0)  # 0: off for this application
    assert_problem(tight.post(app, file=b"nope"), 400, "not_an_image")
