"""Console pages of an application's bulk jobs: status and progress of each, the per-image
results with thumbnails, the archive, and cancelling a job that is still processing."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clearbg.console.auth import ContextDep, FormDep, ViewerDep
from clearbg.console.pages import load_app
from clearbg.console.render import page, redirect
from clearbg.errors import NotFoundError
from clearbg.jobs import bulk
from clearbg.store.models import ApiKey, Application, BulkImage, BulkJob

router = APIRouter(prefix="/console/apps/{app_id}/jobs", include_in_schema=False)


def _jobs(request: Request) -> bulk.JobContext:
    found: bulk.JobContext = request.app.state.services.queue.ctx
    return found


def _own_job(db: Session, app: Application, job_id: str) -> tuple[BulkJob, ApiKey]:
    """The job if one of this application's keys made it (404 otherwise)."""
    job = db.get(BulkJob, job_id)
    key = db.get(ApiKey, job.api_key_id) if job is not None else None
    if job is None or key is None or key.application_id != app.id:
        raise NotFoundError(f"no job {job_id}")
    return job, key


@router.get("", response_class=HTMLResponse)
def list_jobs(request: Request, ctx: ContextDep, who: ViewerDep, app_id: int) -> Response:
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
        rows = db.execute(
            select(BulkJob, ApiKey.prefix)
            .join(ApiKey, ApiKey.id == BulkJob.api_key_id)
            .where(ApiKey.application_id == app.id)
            .order_by(BulkJob.created_at.desc())
            .limit(200)
        ).all()
        ids = [job.id for job, _ in rows]
        counts: Counter[tuple[str, str]] = Counter()
        for job_id, status, n in db.execute(
            select(BulkImage.job_id, BulkImage.status, func.count())
            .where(BulkImage.job_id.in_(ids))
            .group_by(BulkImage.job_id, BulkImage.status)
        ):
            counts[(job_id, status)] = n
    return page(
        request,
        "jobs.html",
        who,
        f"{app.name}: bulk jobs",
        section="apps",
        tab="/jobs",
        app=app,
        rows=rows,
        counts=counts,
    )


@router.get("/{job_id}", response_class=HTMLResponse)
def show_job(
    request: Request, ctx: ContextDep, who: ViewerDep, app_id: int, job_id: str
) -> Response:
    with ctx.sessions() as db:
        app = load_app(db, who, app_id)
        job, key = _own_job(db, app, job_id)
        images = list(
            db.scalars(select(BulkImage).where(BulkImage.job_id == job_id).order_by(BulkImage.n))
        )
    finished = sum(1 for i in images if i.status in bulk.TERMINAL)
    return page(
        request,
        "job.html",
        who,
        f"{app.name}: job {job.id}",
        section="apps",
        tab="/jobs",
        app=app,
        job=job,
        key=key,
        images=images,
        done=sum(1 for i in images if i.status == "done"),
        progress=round(100 * finished / max(1, len(images))),
    )


@router.get("/{job_id}/images/{n}", response_class=Response)
def job_image(
    request: Request, ctx: ContextDep, who: ViewerDep, app_id: int, job_id: str, n: int
) -> StreamingResponse:
    with ctx.sessions() as db:
        _own_job(db, load_app(db, who, app_id), job_id)
        img = db.get(BulkImage, (job_id, n))
    if img is None:
        raise NotFoundError(f"no image {n} in job {job_id}")
    return StreamingResponse(bulk.result_stream(_jobs(request), img), media_type=img.media_type)


@router.get("/{job_id}/archive", response_class=Response)
def job_archive(
    request: Request, ctx: ContextDep, who: ViewerDep, app_id: int, job_id: str
) -> Response:
    with ctx.sessions() as db:
        _own_job(db, load_app(db, who, app_id), job_id)
        images = list(db.scalars(select(BulkImage).where(BulkImage.job_id == job_id)))
    return Response(
        bulk.archive(_jobs(request), job_id, images),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.zip"'},
    )


@router.post("/{job_id}/cancel")
def cancel_job(
    request: Request, ctx: ContextDep, who: ViewerDep, _: FormDep, app_id: int, job_id: str
) -> Response:
    """Images not yet processed are dropped and not charged (``bulk.cancel_job``)."""
    with ctx.sessions() as db:
        key = _own_job(db, load_app(db, who, app_id), job_id)[1]
    bulk.cancel_job(_jobs(request), key, job_id)
    return redirect(f"/console/apps/{app_id}/jobs/{job_id}?done=job_cancelled")
