"""Waiting on a condition instead of sleeping a fixed time: a test that waits for what it needs
is as fast as the machine allows and does not fail when the machine is slow."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

LONGEST_PAUSE = 1.0  # a long wait asks about once a second: under the API's 120 requests a minute


def wait_for(
    read: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    seconds: float = 10,
    what: str = "the condition",
    every: float = 0.02,
) -> T:
    """Call ``read`` until ``done`` holds for its value and return that value; AssertionError
    naming ``what`` and the last value once ``seconds`` have passed. The first pause is
    ``every`` seconds, each next one half as long again, up to LONGEST_PAUSE."""
    deadline = time.monotonic() + seconds
    pause = every
    while True:
        value = read()
        if done(value):
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"waited {seconds} s for {what}; last saw {value!r:.500}")
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, LONGEST_PAUSE)
