"""Bulk jobs as data: create, process, cancel, expire. No HTTP and no queue here.

Each image goes through the paid-call service (``PaidCalls.job_image``): the engine's limit
shared with single requests, the charge and the usage record. Each image is charged exactly
once: the ledger row's reference is ``job:<id>:<n>`` and unique, so an image that runs twice
(a task re-queued after a crash) cannot be charged twice.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clearbg.engine import Cutout, RemoveOptions
from clearbg.engine.batch import side_by_side_workers
from clearbg.errors import ClearbgError, InvalidOptionError, NotFoundError, OutputError
from clearbg.paid.service import PaidCalls
from clearbg.store.files import Files
from clearbg.store.models import ApiKey, BulkImage, BulkJob, utcnow

MAX_IMAGES = 50
TERMINAL = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass
class JobContext:
    """What processing needs: database, the paid-call service, where files live."""

    sessions: sessionmaker[Session]
    paid: PaidCalls
    files: Files
    ttl: timedelta
    side_by_side: int | None = None  # photos at once (None: one per core, at most 4)
    on_image: Callable[[bool], None] | None = None  # told True (delivered) or False (failed)


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def input_key(job_id: str, n: int) -> str:
    return f"jobs/{job_id}/in/{n}"


RESULT_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def result_key(job_id: str, n: int, media_type: str) -> str:
    return f"jobs/{job_id}/out/{n}.{RESULT_TYPES[media_type]}"


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def create_job(
    ctx: JobContext,
    key_id: int,
    uploads: list[Upload],
    opts: RemoveOptions,
    callback_url: str | None,
    job_id: str | None = None,
) -> BulkJob:
    """Store the uploads and the job's rows (every option, as text) under ``job_id`` (from
    ``new_job_id``; a new one if None); the caller has checked the job with
    ``PaidCalls.check_job`` and then queues it."""
    if not 1 <= len(uploads) <= MAX_IMAGES:
        raise InvalidOptionError("image", f"send 1 to {MAX_IMAGES} images, not {len(uploads)}")
    job_id = job_id or new_job_id()
    for n, up in enumerate(uploads):
        ctx.files.put(input_key(job_id, n), up.data)
    with ctx.sessions.begin() as db:
        job = BulkJob(
            id=job_id,
            api_key_id=key_id,
            options=dict(opts.to_fields()),
            image_count=len(uploads),
            callback_url=callback_url,
            expires_at=utcnow() + ctx.ttl,
        )
        db.add(job)
        db.flush()
        for n, up in enumerate(uploads):
            db.add(BulkImage(job_id=job_id, n=n, filename=up.filename[:300]))
    return job


def stored_options(job: BulkJob) -> RemoveOptions:
    """The options a job was submitted with (read back as they were stored)."""
    return RemoveOptions.from_fields(job.options)


def process_job(ctx: JobContext, job_id: str) -> bool:
    """Run every image of a job not done yet, a few side by side, each inside the engine's
    limit; True when this call finished the job. Safe to run again after a crash: done images
    are skipped, none is charged twice."""
    with ctx.sessions.begin() as db:
        job = db.get(BulkJob, job_id)
        if job is None or job.status != "processing":
            return False
        todo = db.scalars(
            select(BulkImage.n)
            .where(BulkImage.job_id == job_id, BulkImage.status.not_in(TERMINAL))
            .order_by(BulkImage.n)
        ).all()
        opts = stored_options(job)
        key_id = job.api_key_id
    # the largest uploads first: photos run side by side, and a big one left for last would
    # run alone while the other cores wait
    sizes = ctx.files.sizes(f"{job_prefix(job_id)}in/")
    todo = sorted(todo, key=lambda n: -sizes.get(input_key(job_id, n), 0))
    workers = max(1, side_by_side_workers(ctx.side_by_side))
    threads = 1 if workers >= 2 else None

    def one(n: int) -> bool:
        return _run_image(ctx, job_id, n, key_id, opts, threads)

    with ThreadPoolExecutor(workers, "clearbg-job") as pool:
        for going_on in pool.map(one, todo):
            if not going_on:  # the job was cancelled: the images not started are dropped
                pool.shutdown(wait=True, cancel_futures=True)
                break
    return _settle(ctx, job_id)


def _run_image(
    ctx: JobContext, job_id: str, n: int, key_id: int, opts: RemoveOptions, threads: int | None
) -> bool:
    """One image through the paid-call service; False once the job is cancelled."""
    reference = f"job:{job_id}:{n}"
    try:
        with ctx.sessions.begin() as db:
            img = db.get(BulkImage, (job_id, n))
            job = db.get(BulkJob, job_id)
            if img is None or job is None or job.status != "processing":
                return False
            if img.status == "queued":
                img.status = "processing"
        data = ctx.files.get(input_key(job_id, n))
        delivered: bool = ctx.paid.job_image(
            key_id,
            data,
            opts,
            reference,
            lambda db, cut, cents: _store_result(ctx, db, job_id, n, cut, cents),
            threads,
        )
        if ctx.on_image is not None and delivered:
            ctx.on_image(True)
        return delivered
    except IntegrityError:  # another run of this image charged it in the same transaction
        return True  # that stored and delivered it
    except ClearbgError as exc:
        # stored, then not charged (short of credits): nothing of it may stay, unless another
        # run of this job (its lease lost) delivered and charged the image meanwhile
        with ctx.sessions() as db:
            img = db.get(BulkImage, (job_id, n))
            delivered = img is not None and img.status == "done"
        if not delivered:
            for media_type in RESULT_TYPES:
                ctx.files.delete(result_key(job_id, n, media_type))
            _fail(ctx, job_id, n, exc)
        return True
    except OSError as exc:
        _fail(ctx, job_id, n, OutputError(f"the upload cannot be read: {exc.strerror}"))
        return True


def _store_result(
    ctx: JobContext, db: Session, job_id: str, n: int, cut: Cutout, cents: int
) -> bool:
    """Store the result and mark it done, in the transaction that charges it; False (nothing
    stored, nothing charged) when the job was cancelled meanwhile."""
    job = db.get(BulkJob, job_id)
    img = db.get(BulkImage, (job_id, n))
    if job is None or img is None or job.status != "processing" or img.status in TERMINAL:
        return False
    ctx.files.put(result_key(job_id, n, cut.media_type), cut.data)
    _deliver(img, cut, cents)
    return True


def _deliver(img: BulkImage, cut: Cutout, cents: int) -> None:
    img.status, img.media_type, img.size = "done", cut.media_type, len(cut.data)
    img.width, img.height, img.credits_cents = cut.width, cut.height, cents
    img.error_code = img.error = None


def _fail(ctx: JobContext, job_id: str, n: int, exc: ClearbgError) -> None:
    if ctx.on_image is not None:
        ctx.on_image(False)
    with ctx.sessions.begin() as db:
        img = db.get(BulkImage, (job_id, n))
        if img is not None and img.status not in TERMINAL:
            img.status, img.error_code, img.error = "failed", exc.code, exc.message


def _settle(ctx: JobContext, job_id: str) -> bool:
    """Mark the job finished when no image is left to do; True if this call finished it."""
    with ctx.sessions.begin() as db:
        job = db.get(BulkJob, job_id)
        if job is None or job.status != "processing":
            return False
        states = db.scalars(select(BulkImage.status).where(BulkImage.job_id == job_id)).all()
        if any(s not in TERMINAL for s in states):
            return False
        job.status = "failed" if all(s == "failed" for s in states) else "completed"
        job.finished_at = utcnow()
        return True


def unfinished_jobs(ctx: JobContext) -> list[str]:
    """Jobs still processing: to queue again after a restart."""
    with ctx.sessions() as db:
        rows = db.scalars(
            select(BulkJob.id).where(BulkJob.status == "processing").order_by(BulkJob.created_at)
        ).all()
    return [str(j) for j in rows]


def get_job(db: Session, key: ApiKey, job_id: str) -> BulkJob:
    job = db.get(BulkJob, job_id)
    if job is None or job.api_key_id != key.id or job.status == "expired":
        raise NotFoundError(f"no job {job_id}")
    return job


def cancel_job(ctx: JobContext, key: ApiKey, job_id: str) -> BulkJob:
    with ctx.sessions.begin() as db:
        job = get_job(db, key, job_id)
        if job.status == "processing":
            for img in db.scalars(select(BulkImage).where(BulkImage.job_id == job_id)):
                if img.status == "queued":
                    img.status, img.error_code = "cancelled", "cancelled"
            job.status = "cancelled"
            job.finished_at = utcnow()
        return job


def expire_jobs(ctx: JobContext, now: datetime | None = None) -> int:
    """Delete the files of jobs past their expiry; the rows stay, marked expired."""
    now = now or datetime.now(UTC)
    with ctx.sessions.begin() as db:
        jobs = db.scalars(
            select(BulkJob).where(BulkJob.expires_at <= now, BulkJob.status != "expired")
        ).all()
        for job in jobs:
            job.status = "expired"
            ctx.files.delete_prefix(job_prefix(job.id))
        return len(jobs)


def result_stream(ctx: JobContext, img: BulkImage) -> Iterator[bytes]:
    """A finished image's result, read in chunks; NotFoundError before it is done or after it
    expired."""
    if img.status != "done" or img.media_type is None:
        raise NotFoundError(f"no result {img.n} in job {img.job_id} (yet)")
    try:
        return ctx.files.stream(result_key(img.job_id, img.n, img.media_type))
    except FileNotFoundError:
        raise NotFoundError(f"the result {img.n} of job {img.job_id} has expired") from None


def archive(ctx: JobContext, job_id: str, images: list[BulkImage]) -> bytes:
    """A zip of the finished results among ``images``, named after the uploaded files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for img in images:
            if img.status != "done" or img.media_type is None:
                continue
            key = result_key(job_id, img.n, img.media_type)
            try:
                data = ctx.files.get(key)
            except FileNotFoundError:
                continue  # expired meanwhile
            stem = (img.filename.rsplit(".", 1)[0] or f"image-{img.n}").replace("/", "_")
            zf.writestr(f"{img.n:02d}-{stem}.{key.rsplit('.', 1)[1]}", data)
    return buf.getvalue()
