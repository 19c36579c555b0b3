"""Bulk jobs as data: create, process, cancel, expire. No HTTP and no queue here.

Each image is charged exactly once: the ledger row's reference is ``job:<id>:<n>`` and unique,
so an image that runs twice (a task re-queued after a crash) cannot be charged twice.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clearbg.accounts import credits
from clearbg.engine import Cutout, Engine, RemoveOptions
from clearbg.engine.batch import remove_many
from clearbg.errors import ClearbgError, InsufficientCreditsError, InvalidOptionError, NotFoundError
from clearbg.store.models import ApiKey, BulkImage, BulkJob, LedgerEntry, utcnow

MAX_IMAGES = 50
TERMINAL = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass
class JobContext:
    """What processing needs: database, engine, results folder, prices."""

    sessions: sessionmaker[Session]
    engine: Engine
    results_dir: Path
    cost_full_cents: int
    cost_preview_cents: int
    ttl: timedelta
    side_by_side: int | None = None  # photos at once (None: one per core, at most 4)

    def folder(self, job_id: str) -> Path:
        return self.results_dir / "jobs" / job_id

    def cost(self, opts: RemoveOptions) -> int:
        return self.cost_preview_cents if opts.size == "preview" else self.cost_full_cents


def options_to_dict(opts: RemoveOptions) -> dict[str, str | bool | None]:
    return {
        "model": opts.model,
        "size": opts.size,
        "format": opts.format,
        "bg_color": "#{:02x}{:02x}{:02x}{:02x}".format(*opts.bg_color) if opts.bg_color else None,
        "channels": opts.channels,
        "crop": opts.crop,
        "crop_margin": f"{opts.crop_margin.value:g}{opts.crop_margin.unit}",
        "flip": opts.flip,
    }


def options_from_dict(d: dict[str, str | bool | None]) -> RemoveOptions:
    return RemoveOptions.parse(
        model=_s(d.get("model")),
        size=_s(d.get("size")),
        format=_s(d.get("format")),
        bg_color=_s(d.get("bg_color")),
        channels=_s(d.get("channels")),
        crop=bool(d.get("crop")),
        crop_margin=_s(d.get("crop_margin")),
        flip=bool(d.get("flip")),
    )


def _s(v: str | bool | None) -> str | None:
    return None if v is None else str(v)


def create_job(
    ctx: JobContext,
    key: ApiKey,
    uploads: list[Upload],
    opts: RemoveOptions,
    callback_url: str | None,
) -> BulkJob:
    """Store the uploads and the job's rows; the caller then queues one task per image."""
    if not 1 <= len(uploads) <= MAX_IMAGES:
        raise InvalidOptionError("image", f"send 1 to {MAX_IMAGES} images, not {len(uploads)}")
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise InvalidOptionError("callback_url", "must be an http(s) URL")
    if not key.unlimited and key.balance_cents < ctx.cost(opts):
        raise InsufficientCreditsError("the key has not enough credits for one image")
    job_id = "job_" + secrets.token_hex(8)
    folder = ctx.folder(job_id) / "in"
    folder.mkdir(parents=True, exist_ok=True)
    for n, up in enumerate(uploads):
        (folder / str(n)).write_bytes(up.data)
    with ctx.sessions.begin() as db:
        job = BulkJob(
            id=job_id,
            api_key_id=key.id,
            options=options_to_dict(opts),
            image_count=len(uploads),
            callback_url=callback_url,
            expires_at=utcnow() + ctx.ttl,
        )
        db.add(job)
        db.flush()
        for n, up in enumerate(uploads):
            db.add(BulkImage(job_id=job_id, n=n, filename=up.filename[:300]))
    return job


def process_job(ctx: JobContext, job_id: str) -> bool:
    """Run every image of a job not done yet, as a pipeline; True when this call finished the
    job. Safe to run again after a crash: done images are skipped, none is charged twice."""
    with ctx.sessions.begin() as db:
        job = db.get(BulkJob, job_id)
        if job is None or job.status != "processing":
            return False
        todo = db.scalars(
            select(BulkImage.n)
            .where(BulkImage.job_id == job_id, BulkImage.status.not_in(TERMINAL))
            .order_by(BulkImage.n)
        ).all()
        opts = options_from_dict(job.options)
        key_id = job.api_key_id
    # the largest uploads first: photos run side by side, and a big one left for last would
    # run alone while the other cores wait
    inputs = ctx.folder(job_id) / "in"
    todo = sorted(todo, key=lambda n: -_size(inputs / str(n)))
    items = [(n, _reader(ctx, job_id, n)) for n in todo]
    results = remove_many(ctx.engine, items, opts, side_by_side=ctx.side_by_side)
    try:
        for n, outcome in results:
            if isinstance(outcome, ClearbgError):
                _fail(ctx, job_id, n, outcome)
            elif not _deliver_result(ctx, job_id, n, key_id, outcome, ctx.cost(opts)):
                break  # the job was cancelled: stop the pipeline
    finally:
        results.close()
    return _settle(ctx, job_id)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # read() will say what is wrong with it


def _reader(ctx: JobContext, job_id: str, n: int) -> Callable[[], bytes]:
    def read() -> bytes:
        with ctx.sessions.begin() as db:
            img = db.get(BulkImage, (job_id, n))
            if img is not None and img.status == "queued":
                img.status = "processing"
        return (ctx.folder(job_id) / "in" / str(n)).read_bytes()

    return read


def _deliver_result(
    ctx: JobContext, job_id: str, n: int, key_id: int, cut: Cutout, cost: int
) -> bool:
    """Store the result and charge for it in one transaction; False if the job is cancelled."""
    out = ctx.folder(job_id) / "out" / f"{n}.{cut.extension}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    tmp.write_bytes(cut.data)
    os.replace(tmp, out)
    try:
        with ctx.sessions.begin() as db:
            key = db.get(ApiKey, key_id)
            job = db.get(BulkJob, job_id)
            img = db.get(BulkImage, (job_id, n))
            assert key is not None and img is not None and job is not None
            if job.status != "processing" or img.status in TERMINAL:
                out.unlink(missing_ok=True)  # cancelled meanwhile: not delivered, not charged
                return False
            credits.charge(db, key, cost, reference=f"job:{job_id}:{n}")
            _deliver(img, cut, 0 if key.unlimited else cost)
    except IntegrityError:  # charged by an earlier run of this same image: deliver, not charge
        with ctx.sessions.begin() as db:
            img = db.get(BulkImage, (job_id, n))
            charged = db.scalar(
                select(LedgerEntry.amount_cents).where(LedgerEntry.reference == f"job:{job_id}:{n}")
            )
            assert img is not None
            _deliver(img, cut, -(charged or 0))
    except InsufficientCreditsError as exc:
        out.unlink(missing_ok=True)
        _fail(ctx, job_id, n, exc)
    return True


def _deliver(img: BulkImage, cut: Cutout, cents: int) -> None:
    img.status, img.media_type, img.size = "done", cut.media_type, len(cut.data)
    img.width, img.height, img.credits_cents = cut.width, cut.height, cents
    img.error_code = img.error = None


def _fail(ctx: JobContext, job_id: str, n: int, exc: ClearbgError) -> None:
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
            shutil.rmtree(ctx.folder(job.id), ignore_errors=True)
        return len(jobs)
