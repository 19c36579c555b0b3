"""Group commit: rows from many concurrent requests written in one transaction.

A request hands its row to the writer thread and waits for the commit that includes it, so
nothing is written later than the answer (a test or a reader sees every row of every answered
request), but a burst of requests shares one transaction instead of queueing for SQLite's write
lock one by one.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("clearbg.store")

__all__ = ["GroupWriter"]

_STOP = object()


class GroupWriter:
    def __init__(self, sessions: sessionmaker[Session], table: Table, max_batch: int = 256) -> None:
        self._sessions = sessions
        self._table = table
        self._max = max_batch
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
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            try:
                with self._sessions.begin() as db:
                    db.execute(insert(self._table), [row for row, _ in batch])
            except Exception as exc:  # the rows are lost, the requests are not: report and go on
                log.exception("could not write %d rows to %s", len(batch), self._table.name)
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for _, done in batch:
                done.set_result(None)
