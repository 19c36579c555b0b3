"""A worker's own Prometheus metrics: queue depth, jobs finished, images delivered and failed.
(The API processes' metrics are ``clearbg.api.metrics``; a worker serves no HTTP API.)"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from clearbg.jobs.queue import JobQueue

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    def __init__(self, queue: JobQueue) -> None:
        self.registry = CollectorRegistry()
        depth = Gauge(
            "clearbg_worker_queue_depth", "Tasks waiting in the job queue", registry=self.registry
        )
        depth.set_function(lambda: float(queue.pending()))
        jobs = Counter("clearbg_worker_jobs", "Bulk jobs finished", registry=self.registry)
        images = Counter(
            "clearbg_worker_images", "Bulk images by outcome", ["outcome"], registry=self.registry
        )
        queue.on_job = jobs.inc
        queue.ctx.on_image = lambda ok: images.labels("delivered" if ok else "failed").inc()

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
