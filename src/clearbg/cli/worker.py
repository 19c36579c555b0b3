"""``clearbg worker``: the bulk-job consumer alone, without the HTTP API; as many as wanted, on
as many machines, sharing the Redis queue (CLEARBG_JOBS__HUEY_URL)."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Jobs run at once (default CLEARBG_JOBS__WORKERS).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0),
    default=0,
    help="Serve this worker's Prometheus metrics on this port (0: none).",
)
def worker(threads: int | None, metrics_port: int) -> None:
    """Run the bulk-job consumer."""
    from clearbg.api.app import build_services
    from clearbg.cli.errors import fail
    from clearbg.cli.startup import load_settings
    from clearbg.errors import ClearbgError
    from clearbg.jobs.metrics import WorkerMetrics

    settings = load_settings()
    try:
        svc = build_services(settings)
        svc.engine.session()  # the model loads now, not with the first image
    except ClearbgError as exc:
        fail(exc)
    if metrics_port:
        WorkerMetrics(svc.queue).serve(settings.server.host, metrics_port)
    click.echo(f"ClearBG worker: {threads or settings.jobs.workers} job(s) at once")
    try:
        svc.queue.run_worker(threads)
    finally:
        svc.usage_writer.close()
        svc.directory.close()
        svc.engine.close()
