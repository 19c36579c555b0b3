"""``clearbg remove --server URL --api-key KEY``: the photos go to a ClearBG server through the
SDK (``clearbg.Client``) instead of the local engine, so a machine without the model can use a
team's server. One input is one call; several (a folder, a glob) go as bulk jobs of up to 50,
with the progress bar, and each result is written where the local engine would write it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from clearbg.errors import ClearbgError, error_from

if TYPE_CHECKING:
    from clearbg.cli.remove import Job
    from clearbg.client import Client, JobStatus

__all__ = ["BULK_IMAGES", "Sent", "run_remote"]

BULK_IMAGES = 50  # the most one bulk job takes (jobs.bulk.MAX_IMAGES on the server)

Read = Callable[[str], bytes]
Write = Callable[[str, bytes], None]
Report = Callable[["Job", ClearbgError], None]


@dataclass(frozen=True)
class Sent:
    """The options a server is sent (the form fields of /v1/removebg and /v1/bulk)."""

    size: str | None = None
    format: str | None = None
    bg_color: str | None = None
    channels: str | None = None
    crop: bool = False
    crop_margin: str | None = None
    model: str | None = None


def run_remote(
    client: Client,
    jobs: list[Job],
    sent: Sent,
    io: tuple[Read, Write, Report],
    quiet: bool,
) -> list[ClearbgError]:
    """Every job through the server; the errors of those that failed (the others written)."""
    read, write, report = io
    if len(jobs) == 1:
        job = jobs[0]
        try:
            cut = client.remove(read(job.source), **asdict(sent))
            write(job.dest, cut.data)
        except ClearbgError as exc:
            report(job, exc)
            return [exc]
        return []
    failures: list[ClearbgError] = []
    with _bar(len(jobs), quiet) as advance:
        for start in range(0, len(jobs), BULK_IMAGES):
            chunk = jobs[start : start + BULK_IMAGES]
            failures += _bulk(client, chunk, sent, io, advance)
    return failures


def _bulk(
    client: Client,
    jobs: list[Job],
    sent: Sent,
    io: tuple[Read, Write, Report],
    advance: Callable[[int], None],
) -> list[ClearbgError]:
    """One bulk job for ``jobs``: results written, failed images reported."""
    read, write, report = io
    try:
        job = client.submit([read(j.source) for j in jobs], **asdict(sent))
    except ClearbgError as exc:
        for each in jobs:
            report(each, exc)
        advance(len(jobs))
        return [exc] * len(jobs)
    seen = 0

    def progress(status: JobStatus) -> None:
        nonlocal seen
        finished = status.done + status.failed
        advance(finished - seen)
        seen = finished

    final = job.wait(progress)
    done = [i.index for i in final.images if i.status == "done"]
    for n, cut in zip(done, job.results(), strict=True):
        write(jobs[n].dest, cut.data)
    failures: list[ClearbgError] = []
    for image in final.images:
        if image.status != "done":
            err = error_from(400, image.error_code or image.status, image.error or image.status)
            report(jobs[image.index], err)
            failures.append(err)
    return failures


@contextmanager
def _bar(total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """rich's progress bar on stderr (stdout stays free), advanced by finished images."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )
    task = progress.add_task("removing backgrounds on the server", total=total)
    with progress:
        yield lambda n: progress.advance(task, n)
