"""The in-memory moving windows behind the throttles (api/windows.py) count as ``limits``'
moving-window strategy does, which they replace on ``memory://``; request ids stay random."""

from __future__ import annotations

import re
import time

import pytest
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from clearbg.api.middleware import RequestIds
from clearbg.paid import windows as windows_module
from clearbg.paid.windows import MemoryWindows


def test_a_window_allows_its_amount_then_refuses() -> None:
    windows = MemoryWindows(60)
    before = time.time()
    seen = [windows.hit("key:1", 3) for _ in range(5)]
    assert [allowed for allowed, _, _ in seen] == [True, True, True, False, False]
    assert [remaining for _, remaining, _ in seen] == [2, 1, 0, 0, 0]
    # the window resets when its oldest hit leaves it
    assert all(before + 60 <= reset <= time.time() + 60 for _, _, reset in seen)
    assert len({reset for _, _, reset in seen}) == 1
    assert windows.hit("key:2", 3)[0]  # each ident its own window
    allowed, remaining, _ = windows.hit("key:1", 4)  # and each amount (a changed limit)
    assert allowed and remaining == 3


class Clock:
    """The windows' ``time`` module, moved on by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(windows_module, "time", fake)
    return fake


def test_hits_leave_the_window_as_it_moves(clock: Clock) -> None:
    windows = MemoryWindows(60)
    assert windows.hit("ip", 2)[0]
    clock.now += 40
    assert windows.hit("ip", 2)[0]
    assert not windows.hit("ip", 2)[0]
    clock.now += 30  # the first hit has left, the second not yet
    allowed, remaining, reset = windows.hit("ip", 2)
    assert allowed and remaining == 0
    assert reset == clock.now - 30 + 60  # when the second hit leaves
    assert not windows.hit("ip", 2)[0]


def test_idle_keys_are_swept(clock: Clock) -> None:
    windows = MemoryWindows(60)
    for n in range(50):
        windows.hit(f"guess:{n}", 1)
    clock.now += 150
    windows.hit("fresh", 1)
    assert list(windows._hits) == ["fresh/1"]


def test_the_same_answers_as_limits_moving_window() -> None:
    ours = MemoryWindows(60)
    theirs = MovingWindowRateLimiter(MemoryStorage())
    for amount in (1, 2, 5):
        item = RateLimitItemPerMinute(amount)
        for _ in range(amount + 3):
            allowed, remaining, reset = ours.hit("k", amount)
            assert allowed == theirs.hit(item, "k")
            their_reset, their_remaining = theirs.get_window_stats(item, "k")
            assert remaining == their_remaining
            assert abs(reset - their_reset) < 0.05


def test_request_ids_are_random_hex_and_unique() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(1000)]  # several batches of os.urandom
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in made)
    assert RequestIds().new() not in made
