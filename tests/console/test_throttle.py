"""The sign-in throttle counts each client IP and each email on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearbg.console.auth import ConsoleContext
from clearbg.errors import RateLimitedError
from clearbg.settings import Settings
from clearbg.store.db import make_engine, sessions


def test_each_email_and_each_ip_has_its_own_budget(tmp_path: Path) -> None:
    base = Settings()
    settings = base.model_copy(
        update={"console": base.console.model_copy(update={"sign_in_per_minute": 3})}
    )
    ctx = ConsoleContext.build(
        settings, sessions(make_engine(f"sqlite:///{tmp_path / 'x.db'}")), "secret"
    )
    for _ in range(3):
        ctx.throttle_sign_in("email:alice@example.com")
    with pytest.raises(RateLimitedError) as caught:
        ctx.throttle_sign_in("email:alice@example.com")
    assert caught.value.retry_after >= 1
    ctx.throttle_sign_in("email:bob@example.com")  # another account is not held up
    ctx.throttle_sign_in("127.0.0.1")
