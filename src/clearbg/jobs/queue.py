"""The Huey queue: SQLite in the data folder by default, Redis when ``huey_url`` says so.

``JobQueue`` owns the Huey instance and its tasks (built per instance, no import-time global),
and runs the consumer on threads inside the serving process, or alone (``clearbg worker``).
On SQLite one process owns the queue: on start it queues again the unfinished jobs, so a server
killed mid-job finishes the job after a restart. On Redis many workers share it: a job whose
worker died is found by its lapsed lease and queued again (``clearbg.jobs.leases``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import redis
from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from clearbg.errors import SettingsError, UrlNotAllowedError
from clearbg.gateway.fetch import Fetcher
from clearbg.jobs import bulk
from clearbg.jobs.leases import Leases
from clearbg.settings import Settings
from clearbg.store.models import BulkImage, BulkJob

log = logging.getLogger("clearbg.jobs")

EXPIRE_MINUTES = 10


class CallbackError(Exception):
    """A callback not delivered (yet): Huey tries again. No client sees it."""


def make_huey(settings: Settings) -> Huey:
    url = settings.jobs.huey_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("clearbg", url=url, results=False)
    path = settings.server.data_dir / "jobs.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("clearbg", filename=str(path), results=False)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class JobQueue:
    def __init__(
        self, settings: Settings, ctx: bulk.JobContext, secret: str, fetcher: Fetcher
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.secret = secret
        self.fetcher = fetcher
        self.huey = make_huey(settings)
        self.leases: Leases | None = None
        if isinstance(self.huey, RedisHuey):
            self.leases = Leases(
                self.huey.storage.conn,
                settings.jobs.lease_seconds,
                settings.jobs.results_ttl_hours * 3600,
            )
        self.on_job: Callable[[], None] | None = None  # told when a job finishes
        self._consumer: Any = None
        self._reaper_stop = threading.Event()
        huey = self.huey

        @huey.task(name="clearbg.process_job")
        def process_job(job_id: str) -> None:
            if self.leases is None:
                finished = bulk.process_job(ctx, job_id)
            else:
                with self.leases.hold(job_id):
                    finished = bulk.process_job(ctx, job_id)
            if finished:
                if self.on_job is not None:
                    self.on_job()
                self._callback_task(job_id)

        @huey.task(
            name="clearbg.callback",
            retries=settings.jobs.callback_attempts - 1,
            retry_delay=1,
            retry_backoff=2,
        )
        def callback(job_id: str) -> None:
            self.deliver_callback(job_id)

        @huey.periodic_task(_every_minutes(EXPIRE_MINUTES), name="clearbg.expire")
        def expire() -> None:
            self.expire_once()

        self._process: Callable[[str], Any] = process_job
        self._callback_task: Callable[[str], Any] = callback

    def expect(self, job_id: str) -> None:
        """Before the job's rows are written: no reaper takes it as lost while it is being
        made and queued."""
        if self.leases is not None:
            self.leases.queued(job_id)

    def enqueue(self, job_id: str) -> None:
        self.expect(job_id)
        self._process(job_id)

    def expire_once(self, now: float | None = None) -> bool:
        """Expire old jobs unless another consumer did in this schedule slot: every consumer's
        scheduler queues the periodic task, the first of a slot (a key set if empty, in the
        queue's own storage) runs it. True when this call ran it."""
        slot = int((now if now is not None else time.time()) // (EXPIRE_MINUTES * 60))
        if not self.huey.put_if_empty(f"clearbg.expire.{slot}", 1):
            return False
        self.huey.get(f"clearbg.expire.{slot - 1}")  # the previous slot's mark, gone
        bulk.expire_jobs(self.ctx)
        return True

    def check(self) -> None:
        """``SettingsError`` naming the setting when the queue's Redis cannot be reached."""
        if isinstance(self.huey, RedisHuey):
            try:
                self.huey.storage.conn.ping()
            except redis.RedisError as exc:
                raise SettingsError(
                    f"CLEARBG_JOBS__HUEY_URL: Redis cannot be reached: {exc}"
                ) from exc

    def requeue_lost(self) -> list[str]:
        """Queue again the jobs still processing whose worker died (Redis only)."""
        if self.leases is None:
            return []
        lost = self.leases.lost(bulk.unfinished_jobs(self.ctx))
        again = [job_id for job_id in lost if self.leases.claim(job_id)]
        for job_id in again:
            log.warning("job %s lost its worker: queued again", job_id)
            self._process(job_id)
        return again

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def deliver_callback(self, job_id: str) -> None:
        with self.ctx.sessions() as db:
            job = db.get(BulkJob, job_id)
            if job is None or not job.callback_url:
                return
            images = db.query(BulkImage).filter(BulkImage.job_id == job_id).all()
            payload = {
                "job_id": job.id,
                "status": job.status,
                "image_count": job.image_count,
                "succeeded": sum(1 for i in images if i.status == "done"),
                "failed": sum(1 for i in images if i.status == "failed"),
            }
            url = job.callback_url
        body = json.dumps(payload).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-ClearBG-Timestamp": stamp,
            "X-ClearBG-Signature": sign(self.secret, stamp, body),
        }
        try:
            # the image-URL guard again: the host's address may have changed since submission
            status = self.fetcher.post(url, body, headers, timeout=10)
        except UrlNotAllowedError as exc:
            log.warning("callback of %s not sent: %s", job_id, exc.message)
            return
        except httpx.HTTPError as exc:
            raise CallbackError(f"the callback of {job_id} failed: {exc}") from exc
        if not 200 <= status < 300:  # an exception makes Huey retry with back-off
            raise CallbackError(f"the callback of {job_id} was answered {status}")

    def start_consumer(self, threads: int | None = None) -> None:
        """Run the consumer on threads in this process; queue again what a crash left."""
        self._consumer = self._prepare(_EmbeddedConsumer, threads)
        self._consumer.start()

    def run_worker(self, threads: int | None = None) -> None:
        """Run the consumer until SIGINT or SIGTERM (``clearbg worker``)."""
        consumer = self._prepare(Consumer, threads)
        try:
            consumer.run()
        finally:
            self._reaper_stop.set()

    def _prepare(self, kind: type[Consumer], threads: int | None) -> Consumer:
        if isinstance(self.huey, SqliteHuey):
            # one process owns this queue: the database is the truth, the queue is rebuilt
            self.huey.flush()
            for job_id in bulk.unfinished_jobs(self.ctx):
                self._process(job_id)
        else:
            self._reaper_stop.clear()
            threading.Thread(target=self._reap, name="clearbg-reaper", daemon=True).start()
        return kind(
            self.huey,
            workers=threads or self.settings.jobs.workers,
            worker_type="thread",
            periodic=True,
            initial_delay=0.05,
            max_delay=0.5,
            check_worker_health=False,
        )

    def _reap(self) -> None:
        every = self.settings.jobs.lease_seconds / 2
        while not self._reaper_stop.wait(every):
            try:
                self.requeue_lost()
            except Exception:  # the database or Redis away for a moment: try next round
                log.exception("could not look for jobs that lost their worker")

    def stop_consumer(self) -> None:
        self._reaper_stop.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None


class _EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """Huey's consumer on threads of the serving process; the server keeps its signals."""

    def _set_signal_handlers(self) -> None:
        return None


def _every_minutes(n: int) -> Any:
    from huey import crontab

    return crontab(minute=f"*/{n}")


def ttl(settings: Settings) -> timedelta:
    return timedelta(hours=settings.jobs.results_ttl_hours)
