"""The engine's limit: at most ``slots`` photos in the engine at once and at most ``pixel_budget``
of their pixels (one photo larger than the budget still runs, alone); up to ``queue`` more wait,
then ``OverloadedError`` (503). One limit serves the event loop (single requests) and worker
threads (bulk images), so a burst of both cannot exceed the memory the settings promise.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio.to_thread

from clearbg.errors import OverloadedError

__all__ = ["EngineLimit"]

T = TypeVar("T")


class EngineLimit:
    def __init__(
        self,
        slots: int,
        queue: int,
        pixel_budget: int,
        on_depth: Callable[[int], None] = lambda depth: None,
    ) -> None:
        self.slots = slots
        self.capacity = slots + queue
        self.pixel_budget = pixel_budget
        self.inside = 0  # running and waiting
        self.running = 0
        self.pixels = 0
        self._on_depth = on_depth
        self._lock = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def _fits(self, pixels: int) -> bool:
        if self.running >= self.slots:
            return False
        return self.running == 0 or self.pixels + pixels <= self.pixel_budget

    def _enter(self, refuse: bool = True) -> None:
        if refuse and self.inside >= self.capacity:
            raise OverloadedError("the server is busy; try again shortly", retry_after=2)
        self.inside += 1
        self._on_depth(self.inside)

    def _take(self, pixels: int) -> bool:
        if not self._fits(pixels):
            return False
        self.running += 1
        self.pixels += pixels
        return True

    def _leave(self, pixels: int, ran: bool) -> None:
        with self._lock:
            self.inside -= 1
            if ran:
                self.running -= 1
                self.pixels -= pixels
            self._on_depth(self.inside)
            self._lock.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:  # each async waiter checks again on its own loop
            loop.call_soon_threadsafe(_wake, fut)

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """A slot for ``pixels``, waiting on this thread however long the queue (bulk images:
        their workers are few, and they count in the queue that single requests see)."""
        with self._lock:
            self._enter(refuse=False)
            ran = False
            try:
                self._lock.wait_for(lambda: self._take(pixels))
                ran = True
            finally:
                if not ran:
                    self.inside -= 1
                    self._on_depth(self.inside)
        try:
            yield
        finally:
            self._leave(pixels, ran=True)

    async def run(self, fn: Callable[[], T], pixels: int) -> T:
        """``fn()`` on a worker thread once a slot for ``pixels`` is free; waiting is on the
        event loop, so a client that goes away while queued leaves the queue."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._enter()
        ran = False
        try:
            while True:
                with self._lock:
                    if self._take(pixels):
                        ran = True
                        break
                    fut: asyncio.Future[None] = loop.create_future()
                    self._waiters.append((loop, fut))
                await fut
            return await anyio.to_thread.run_sync(fn)
        finally:
            self._leave(pixels, ran)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
