"""`clearbg admin apps create|set|show` and `clearbg admin usage` edit and read what the running
gateway uses (the same SQLite database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.conftest import PNG, Gateway
from tests.gateway.test_clearbg import assert_cutout, assert_problem, wait_usage
from tests.waiting import wait_for


def admin(data: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "clearbg.cli", "admin", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "250"},  # rich fits its tables to the terminal
    )
    assert (out.returncode == 0) is ok, out.stderr
    return out


@pytest.mark.slow
def test_the_cli_sets_what_the_gateway_does(gateway: Gateway) -> None:
    data = gateway.server.settings.server.data_dir
    made = admin(data, "apps", "create", "cli-shop", "--anon-daily", "1", "--credit-cost", "2")
    assert "anonymous 1/day per IP" in made.stdout and "2 credits per image" in made.stdout
    app_key = made.stdout.split("app key ", 1)[1].split()[0]

    assert_cutout(gateway.post(app_key, file=PNG))
    assert_problem(gateway.post(app_key, file=PNG), 429, "anonymous_limit_reached")

    shown = admin(data, "apps", "set", "cli-shop", "--disable").stdout
    assert "gateway disabled" in shown
    assert_problem(gateway.post(app_key, file=PNG), 503, "gateway_disabled")

    shown = admin(
        data,
        "apps",
        "set",
        "cli-shop",
        "--enable",
        "--upstream",
        "http",
        "--upstream-url",
        "http://127.0.0.1:9",
        "--upstream-key",
        "cbg_secret",
        "--ip-rate",
        "0",
        "--key-rate",
        "default",
    ).stdout
    assert "upstream http http://127.0.0.1:9 (key set)" in shown and "cbg_secret" not in shown
    assert "throttle off per IP and default per key" in shown
    key = gateway.make_key(app_key, credits_=2)
    assert_problem(gateway.post(app_key, key, file=PNG), 502, "upstream_unreachable")
    assert gateway.server.balance(key) == 2

    assert "upstream none" in admin(data, "apps", "set", "cli-shop", "--upstream", "none").stdout
    assert_problem(gateway.post(app_key, key, file=PNG), 503, "upstream_not_configured")
    bad = admin(data, "apps", "set", "cli-shop", "--ip-rate", "lots", ok=False)
    assert bad.returncode == 3 and "invalid_option" in bad.stderr
    assert "cli-shop" in admin(data, "apps", "list").stdout

    wait_for(
        lambda: [r for r in wait_usage(gateway, 0, app_key) if r.status == 429],
        what="the usage record of the refused anonymous call",
    )
    usage = admin(data, "usage", "--app", "cli-shop", "--endpoint", "/api/v1/clearbg").stdout
    assert "anonymous_limit_reached 1" in usage and "p95" in usage
