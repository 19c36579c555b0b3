"""Waiting on a condition instead of sleeping a fixed time: a test that waits for what it needs
is as fast as the machine allows and does not fail when the machine is slow."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    read: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    seconds: float = 10,
    what: str = "the condition",
    every: float = 0.02,
) -> T:
    """Call ``read`` until ``done`` holds for its value and return that value; AssertionError
    naming ``what`` and the last value once ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {seconds} s for {what}; last saw {value!r:.500}")
        time.sleep(every)
