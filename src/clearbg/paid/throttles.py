"""Requests per minute per key, client IP or application, in moving windows: in process memory
by default (``MemoryWindows``), in ``limits``' storage when one is configured (Redis: shared by
every server process, counted by one Lua script per hit, so parallel requests on several
processes never pass more than the limit)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from clearbg.errors import RateLimitedError, SettingsError
from clearbg.paid.context import CallContext
from clearbg.paid.windows import MemoryWindows

__all__ = ["Throttles", "Window", "enforce", "shared_storage"]


def shared_storage(url: str) -> Storage:
    """``limits``' storage for ``url`` (CLEARBG_LIMITS__STORAGE_URL), checked reachable."""
    try:
        storage = storage_from_string(url)
    except ConfigurationError as exc:
        raise SettingsError(f"CLEARBG_LIMITS__STORAGE_URL cannot be used: {exc}") from exc
    if not isinstance(storage, Storage):
        raise SettingsError(f"CLEARBG_LIMITS__STORAGE_URL: {url} is an asyncio storage")
    if not storage.check():
        raise SettingsError(f"CLEARBG_LIMITS__STORAGE_URL: {url} cannot be reached")
    return storage


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


class Throttles:
    def __init__(self, storage_url: str) -> None:
        self.limiter: MemoryWindows | MovingWindowRateLimiter = (
            MemoryWindows(60)
            if storage_url.startswith("memory://")
            else MovingWindowRateLimiter(shared_storage(storage_url))
        )

    def take(self, ident: str, per_minute: int) -> Window:
        """Count one request against ``per_minute`` for ``ident`` (0 or less: no limit)."""
        if per_minute <= 0:
            return Window(True, 0, 0, 0.0)
        if isinstance(self.limiter, MemoryWindows):
            allowed, remaining, reset = self.limiter.hit(ident, per_minute)
            return Window(allowed, per_minute, remaining, reset)
        item = RateLimitItemPerMinute(per_minute)
        allowed = self.limiter.hit(item, ident)
        reset, remaining = self.limiter.get_window_stats(item, ident)
        return Window(allowed, item.amount, remaining, reset)


def enforce(ctx: CallContext, windows: list[Window]) -> None:
    """The X-RateLimit-* headers of the tightest limit on the answer; 429 when any is over."""
    counted = [w for w in windows if w.limit > 0]
    if not counted:
        return
    tightest = min(counted, key=lambda w: (w.allowed, w.remaining))
    ctx.headers = tightest.headers()
    if not tightest.allowed:
        raise RateLimitedError(
            f"more than {tightest.limit} requests per minute", retry_after=tightest.retry_after()
        )
