"""Group commit: rows from many concurrent requests written in one transaction.

A request hands its row to the writer thread once its answer is sent and waits for the commit
that includes it, so a burst of requests shares one transaction instead of queueing for
SQLite's write lock one by one. A lone request's row is written at once (a reader sees it a
moment after the answer); under load (the last batch had company) the writer lingers 20 ms
after a batch's first row for more to join it: a transaction costs about as much as 16 rows,
and the rows' requests have already been answered while they wait.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Engine, Table, insert

log = logging.getLogger("clearbg.store")

__all__ = ["GroupWriter"]

_STOP = object()


class GroupWriter:
    def __init__(
        self, engine: Engine, table: Table, max_batch: int = 256, linger: float = 0.02
    ) -> None:
        self._engine = engine
        self._table = table
        self._max = max_batch
        self._linger = linger
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="clearbg-group-writer", daemon=True)
        self._thread.start()

    def submit(self, row: dict[str, Any]) -> Future[None]:
        done: Future[None] = Future()
        self._queue.put((row, done))
        return done

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        busy = False
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            if busy:
                time.sleep(self._linger)  # one wake-up per batch, not one per row
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            busy = len(batch) > 1
            try:
                with self._engine.begin() as conn:  # Core: no ORM session for plain inserts
                    conn.execute(insert(self._table), [row for row, _ in batch])
            except Exception as exc:  # the rows are lost, the requests are not: report and go on
                log.exception("could not write %d rows to %s", len(batch), self._table.name)
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for _, done in batch:
                done.set_result(None)
