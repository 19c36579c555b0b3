"""Leases on bulk jobs in Redis: a job whose worker died is queued again.

Huey's Redis queue hands a task to one worker and forgets it: a worker killed mid-job takes
the task with it. So each job in flight has a key in Redis: ``queued`` from the moment it is
queued, ``running <host>:<pid>`` while a worker holds it (renewed every third of
``lease_seconds``, gone when the job ends). Any worker's reaper finds jobs still processing in
the database whose key has expired and queues them again; ``SET NX`` lets only one reaper do
so. A job run again skips its finished images and charges none twice (``clearbg.jobs.bulk``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis, RedisError

log = logging.getLogger("clearbg.jobs")

__all__ = ["Leases"]


class Leases:
    def __init__(self, conn: Redis, lease_seconds: float, queued_seconds: float) -> None:
        self.conn = conn
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.queued_ms = max(self.lease_ms, int(queued_seconds * 1000))

    @staticmethod
    def _key(job_id: str) -> str:
        return f"clearbg.lease.{job_id}"

    def queued(self, job_id: str) -> None:
        """The job is about to be queued: no reaper takes it while it waits in the queue."""
        self.conn.set(self._key(job_id), "queued", px=self.queued_ms)

    def claim(self, job_id: str) -> bool:
        """True for the one reaper that may queue a job whose lease has gone."""
        return bool(self.conn.set(self._key(job_id), "queued", px=self.queued_ms, nx=True))

    def lost(self, job_ids: list[str]) -> list[str]:
        """The jobs among ``job_ids`` that no worker holds and no queue entry waits for."""
        if not job_ids:
            return []
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(self._key(job_id))
        return [j for j, held in zip(job_ids, pipe.execute(), strict=True) if not held]

    @contextmanager
    def hold(self, job_id: str) -> Iterator[None]:
        """Hold the job's lease while the block runs; renewed on a thread of its own."""
        key = self._key(job_id)
        # this thread's own value (the pid last), so only its holder may end the lease
        holder = f"running {socket.gethostname()}.{threading.get_ident()}:{os.getpid()}"
        self.conn.set(key, holder, px=self.lease_ms)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_ms / 3000):
                try:
                    self.conn.set(key, holder, px=self.lease_ms)
                except (OSError, RedisError):  # Redis away a moment: the next renewal retries
                    log.warning("the lease of %s could not be renewed", job_id)

        thread = threading.Thread(target=renew, name=f"clearbg-lease-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.conn.eval(_RELEASE, 1, key, holder)


# deletes the lease only if it is still the caller's (another worker may hold it by now)
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
