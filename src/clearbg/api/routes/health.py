"""``/healthz`` (the process answers), ``/readyz`` (the model is loaded), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from clearbg.api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> JSONResponse:
    if svc.ready:
        return JSONResponse({"status": "ready", "model": svc.settings.engine.default_model})
    return JSONResponse({"status": "loading"}, status_code=503)


@router.get("/metrics")
def metrics(svc: ServicesDep) -> Response:
    svc.metrics.queue_depth.labels("bulk_jobs").set(svc.queue.pending())
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
