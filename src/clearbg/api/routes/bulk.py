"""``/v1/bulk``: up to 50 photos in one asynchronous job (Huey), with status, results, a zip
archive and cancellation. Another key's job is a 404. Results are streamed from the file store
(a folder or an S3 bucket), whichever process stored them."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, Header, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select

from clearbg.api.deps import CallerDep, ContextDep, ServicesDep
from clearbg.api.forms import form_options, read_upload
from clearbg.api.routes.removebg import rendered
from clearbg.engine import RemoveOptions
from clearbg.errors import InvalidOptionError, NotFoundError
from clearbg.jobs import bulk
from clearbg.paid.idempotency import Answer
from clearbg.store.models import BulkImage, BulkJob

router = APIRouter(tags=["bulk"])


class ImageStatus(BaseModel):
    index: int
    filename: str
    status: str
    error_code: str | None
    error: str | None
    result_url: str | None
    media_type: str | None
    width: int | None
    height: int | None
    size: int | None
    credits_charged: float


class JobPublic(BaseModel):
    job_id: str
    status: str
    image_count: int
    done: int
    failed: int
    progress: float
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime
    images: list[ImageStatus]


def _public(job: BulkJob, images: list[BulkImage]) -> JobPublic:
    done = sum(1 for i in images if i.status == "done")
    failed = sum(1 for i in images if i.status in ("failed", "cancelled"))
    return JobPublic(
        job_id=job.id,
        status=job.status,
        image_count=job.image_count,
        done=done,
        failed=failed,
        progress=round((done + failed) / max(1, job.image_count), 4),
        created_at=job.created_at,
        finished_at=job.finished_at,
        expires_at=job.expires_at,
        images=[
            ImageStatus(
                index=i.n,
                filename=i.filename,
                status=i.status,
                error_code=i.error_code,
                error=i.error,
                result_url=f"/v1/bulk/{job.id}/images/{i.n}" if i.status == "done" else None,
                media_type=i.media_type,
                width=i.width,
                height=i.height,
                size=i.size,
                credits_charged=i.credits_cents / 100,
            )
            for i in images
        ],
    )


@router.post("/v1/bulk", status_code=202)
async def create_bulk(
    svc: ServicesDep,
    ctx: ContextDep,
    who: CallerDep,
    image: Annotated[list[UploadFile | str], File(description="1 to 50 photos")],
    opts: Annotated[RemoveOptions, Depends(form_options)],
    callback_url: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Queue a bulk job; answers at once with its id (poll ``GET /v1/bulk/{job_id}``)."""
    if len(image) > bulk.MAX_IMAGES:
        raise InvalidOptionError("image", f"at most {bulk.MAX_IMAGES} images, not {len(image)}")
    uploads = [
        bulk.Upload(getattr(f, "filename", None) or f"image-{n}", await read_upload(f))
        for n, f in enumerate(image)
    ]
    ctx.bytes_in = sum(len(u.data) for u in uploads)
    hook = callback_url if callback_url is None else callback_url.strip() or None
    await svc.paid.check_job(who, opts, hook)
    digest = hashlib.sha256(repr((opts, hook)).encode())
    for u in uploads:
        digest.update(hashlib.sha256(u.data).digest())
    idem = svc.paid.idempotency(who, idempotency_key, digest.hexdigest())
    replay = idem.begin()
    if replay is not None:
        return rendered(replay)
    queue = svc.queue
    job_id = bulk.new_job_id()
    try:
        await anyio.to_thread.run_sync(queue.expect, job_id)
        job = await anyio.to_thread.run_sync(
            lambda: bulk.create_job(queue.ctx, who.key.id, uploads, opts, hook, job_id)
        )
    except BaseException:
        idem.abandon()
        raise
    queue.enqueue(job.id)
    head = {"job_id": job.id, "status": job.status, "image_count": job.image_count}
    answer = Answer(
        202,
        {"content-type": "application/json", "location": f"/v1/bulk/{job.id}"},
        json.dumps(head).encode(),
    )
    return rendered(idem.finish(answer))


@router.get("/v1/bulk/{job_id}")
def get_bulk(svc: ServicesDep, who: CallerDep, job_id: str) -> JobPublic:
    with svc.sessions() as db:
        job = bulk.get_job(db, who.key, job_id)
        images = list(
            db.scalars(select(BulkImage).where(BulkImage.job_id == job_id).order_by(BulkImage.n))
        )
    return _public(job, images)


@router.get("/v1/bulk/{job_id}/images/{n}", response_class=Response)
def get_bulk_image(svc: ServicesDep, who: CallerDep, job_id: str, n: int) -> StreamingResponse:
    with svc.sessions() as db:
        bulk.get_job(db, who.key, job_id)
        img = db.get(BulkImage, (job_id, n))
    if img is None:
        raise NotFoundError(f"no result {n} in job {job_id} (yet)")
    headers = {"Content-Length": str(img.size)} if img.size is not None else None
    return StreamingResponse(
        bulk.result_stream(svc.queue.ctx, img), media_type=img.media_type, headers=headers
    )


@router.get("/v1/bulk/{job_id}/archive", response_class=Response)
def get_bulk_archive(svc: ServicesDep, who: CallerDep, job_id: str) -> Response:
    """A zip of every finished result, named after the uploaded files."""
    with svc.sessions() as db:
        bulk.get_job(db, who.key, job_id)
        images = list(
            db.scalars(
                select(BulkImage).where(BulkImage.job_id == job_id, BulkImage.status == "done")
            )
        )
    return Response(
        bulk.archive(svc.queue.ctx, job_id, images),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.zip"'},
    )


@router.delete("/v1/bulk/{job_id}")
def cancel_bulk(svc: ServicesDep, who: CallerDep, job_id: str) -> JobPublic:
    """Cancel a job: images not yet processed are dropped and not charged."""
    bulk.cancel_job(svc.queue.ctx, who.key, job_id)
    return get_bulk(svc, who, job_id)
