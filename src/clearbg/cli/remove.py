"""``clearbg remove INPUT... [-o OUT]``: files, folders, globs, or ``-`` for stdin/stdout.

One input writes one file (``-o FILE``, ``-o -`` for stdout; default ``<stem>-nobg.<format>``
beside the input, or stdout for stdin). Several inputs, a folder or a glob need ``-o FOLDER`` and
each result is ``FOLDER/<stem>.<format>``. Many photos run as a pipeline: one thread decodes
ahead, the model runs on the main thread, another thread composes, encodes and writes, so
decoding and encoding overlap inference.
"""

from __future__ import annotations

import functools
import glob
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clearbg.cli.errors import fail
from clearbg.cli.remote import Sent
from clearbg.errors import ClearbgError, InputError, OutputError

if TYPE_CHECKING:
    from clearbg.engine import Engine, RemoveOptions

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".mpo",
    }
)
STDIO = "-"


@dataclass(frozen=True)
class Job:
    source: str  # a path or "-"
    dest: str  # a path or "-"


def _expand(inputs: tuple[str, ...]) -> tuple[list[str], bool]:
    """Input paths in order, and whether they are 'many' (several, a folder or a glob)."""
    found: list[str] = []
    many = len(inputs) > 1
    for item in inputs:
        if item == STDIO:
            found.append(item)
        elif os.path.isdir(item):
            many = True
            found += sorted(
                str(p)
                for p in Path(item).iterdir()
                # hidden files are skipped, as a glob does (macOS's ._IMG_1.jpg are not photos)
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        elif os.path.exists(item):
            found.append(item)
        elif glob.has_magic(item):
            many = True
            found += sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            raise click.BadParameter(f"{item}: no such file, folder or pattern", param_hint="INPUT")
    return found, many


def plan(inputs: tuple[str, ...], output: str | None, fmt: str) -> list[Job]:
    sources, many = _expand(inputs)
    if not many:
        src = sources[0]
        into_folder = bool(output) and STDIO not in (output, src)
        if output and into_folder and (os.path.isdir(output) or output.endswith(("/", os.sep))):
            return [Job(src, str(Path(output) / f"{Path(src).stem}.{fmt}"))]
        if output:
            return [Job(src, output)]
        if src == STDIO:
            return [Job(src, STDIO)]
        return [Job(src, str(Path(src).with_name(f"{Path(src).stem}-nobg.{fmt}")))]
    if STDIO in sources:
        raise click.UsageError("'-' (stdin) can only be the only input")
    if not output or output == STDIO:
        raise click.UsageError("with several inputs, a folder or a glob, give -o FOLDER")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise click.UsageError(f"-o {output}: exists and is not a folder")
    names = _names(sources, fmt)
    return [Job(src, str(folder / name)) for src, name in zip(sources, names, strict=True)]


def _names(sources: list[str], fmt: str) -> list[str]:
    """``<stem>.<fmt>`` for each source; ``<stem>-2.<fmt>``... when stems repeat (a.jpg, a.png,
    x/a.jpg), so no result overwrites another."""
    used: set[str] = set()
    names = []
    for src in sources:
        stem, n = Path(src).stem, 1
        name = f"{stem}.{fmt}"
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}.{fmt}"
        used.add(name.lower())
        names.append(name)
    return names


def _size(source: str) -> int:
    """The file's size in bytes; 0 for stdin or a file that cannot be read (yet)."""
    try:
        return 0 if source == "-" else Path(source).stat().st_size
    except OSError:
        return 0


def _read(source: str) -> bytes:
    if source == STDIO:
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc


def _write(dest: str, data: bytes) -> None:
    if dest == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(dest)
    # written beside the target, then renamed: a reader never sees half a file. Not mkstemp,
    # whose files are private (0600): a result gets the user's usual permissions (umask)
    tmp = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror}") from exc


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file, '-' for stdout, or a folder for many inputs.")
@click.option("-m", "--model", help="Model name (see `clearbg models list`); default u2net.")
@click.option(
    "-s",
    "--size",
    type=click.Choice(["original", "preview", "medium", "hd", "720p", "1080p", "4k"]),
    default="original",
    show_default=True,
    help="Scale the result down to fit this size.",
)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["png", "jpg", "jpeg", "webp"]),
    default=None,
    help="Output format  [default: the -o file's extension, else png]",
)
@click.option("-b", "--bg-color", help="Background colour: #RGB, #RRGGBB, #RRGGBBAA or a CSS name.")
@click.option(
    "--channels",
    type=click.Choice(["rgba", "alpha"]),
    default="rgba",
    show_default=True,
    help="'alpha' writes the mask only.",
)
@click.option("--crop", is_flag=True, help="Crop to the subject.")
@click.option("--crop-margin", default=None, help="Margin around a crop: pixels or a percentage.")
@click.option(
    "--combine/--no-combine",
    default=True,
    show_default=True,
    help="Join the model's mask with its companion model's (see `clearbg models list`).",
)
@click.option(
    "--refine/--no-refine",
    default=True,
    show_default=True,
    help="Matte the mask's unsure band against the photo.",
)
@click.option(
    "--flip/--no-flip",
    default=False,
    show_default=True,
    help="Also run the model on the mirrored photo and average (twice the inference).",
)
@click.option(
    "--pipeline",
    type=click.Choice(["default", "best"]),
    default="default",
    show_default=True,
    help="'best': isnet's and u2net's masks averaged, then fused and refined "
    "(about 3x u2net's time; see docs/quality.md).",
)
@click.option(
    "--foreground/--no-foreground",
    default=True,
    show_default=True,
    help="Estimate the subject's colour at soft edges.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--server",
    metavar="URL",
    help="Send the photos to this ClearBG server instead of the local engine "
    "(folders as bulk jobs).",
)
@click.option("--api-key", metavar="KEY", help="The server's API key (with --server).")
def remove(
    inputs: tuple[str, ...],
    output: str | None,
    model: str | None,
    size: str,
    fmt: str | None,
    bg_color: str | None,
    channels: str,
    crop: bool,
    crop_margin: str | None,
    combine: bool,
    refine: bool,
    flip: bool,
    pipeline: str,
    foreground: bool,
    quiet: bool,
    server: str | None,
    api_key: str | None,
) -> None:
    """Remove the background of photos (files, folders, globs, or - for stdin)."""
    if server is not None:
        local_only = {
            "--no-combine": not combine,
            "--no-refine": not refine,
            "--flip": flip,
            "--pipeline best": pipeline != "default",
            "--no-foreground": not foreground,
        }
        if any(local_only.values()):
            changed = ", ".join(k for k, v in local_only.items() if v)
            raise click.UsageError(f"{changed}: the local engine's options, not sent to a server")
        if not api_key:
            raise click.UsageError("--server needs --api-key")
        fmt = fmt or _format_of(output)
        sent = Sent(size, fmt, bg_color, channels, crop, crop_margin, model)
        _run_remote(server, api_key, plan(inputs, output, fmt.replace("jpeg", "jpg")), sent, quiet)
        return
    from clearbg.engine import Engine, RemoveOptions
    from clearbg.engine.batch import side_by_side_workers
    from clearbg.settings import Settings

    try:
        opts = RemoveOptions.parse(
            model=model,
            size=size,
            format=fmt or _format_of(output),
            bg_color=bg_color,
            channels=channels,
            crop=crop,
            crop_margin=crop_margin,
            refine=refine,
            foreground=foreground,
            flip=flip,
            combine=combine,
            pipeline=pipeline,
        )
    except ClearbgError as exc:
        fail(exc)
    jobs = plan(inputs, output, opts.format)
    if not jobs:
        raise click.UsageError("no images found in the inputs")
    engine = Engine(Settings().engine)
    # many photos run side by side on a one-thread session: load only the session that runs
    threads = 1 if len(jobs) > 1 and side_by_side_workers() >= 2 else None
    try:
        engine.session(opts.model, threads)  # load (and verify) the model once, before any photo
        if opts.partner is not None:
            engine.session(opts.partner, threads)
        if opts.combine:
            engine.companion(opts.model, threads)
    except ClearbgError as exc:
        fail(exc)
    try:
        if len(jobs) == 1:
            failures = _run_one(engine, jobs[0], opts)
        else:
            failures = _run_many(engine, jobs, opts, quiet)
    finally:
        engine.close()
    if failures:
        sys.exit(failures[0].exit_code)


def _run_remote(server: str, api_key: str, jobs: list[Job], sent: Sent, quiet: bool) -> None:
    from clearbg.cli.remote import run_remote
    from clearbg.client import Client

    if not jobs:
        raise click.UsageError("no images found in the inputs")
    with Client(server, api_key) as client:
        failures = run_remote(client, jobs, sent, (_read, _write, _report), quiet)
    if failures:
        sys.exit(failures[0].exit_code)


def _format_of(output: str | None) -> str:
    """The format an output file's name asks for (``-o cut.webp``); png otherwise."""
    if not output or output == STDIO or os.path.isdir(output):
        return "png"
    suffix = Path(output).suffix.lower().lstrip(".")
    return suffix if suffix in ("png", "jpg", "jpeg", "webp") else "png"


def _report(job: Job, exc: ClearbgError) -> None:
    click.echo(f"clearbg: {job.source}: [{exc.code}] {exc.message}", err=True)


def _run_one(engine: Engine, job: Job, opts: RemoveOptions) -> list[ClearbgError]:
    try:
        _write(job.dest, engine.remove(_read(job.source), opts).data)
    except ClearbgError as exc:
        _report(job, exc)
        return [exc]
    return []


def _run_many(
    engine: Engine, jobs: list[Job], opts: RemoveOptions, quiet: bool
) -> list[ClearbgError]:
    """Many photos through the engine's pipeline (decode ahead, encode behind), with a bar."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from clearbg.engine.batch import remove_many

    failures: list[ClearbgError] = []
    progress = Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout stays free for results and pipes
        disable=quiet,
        transient=False,
    )
    # the largest files first: photos run side by side, and a big one left for last would run
    # alone while the other cores wait
    ordered = sorted(jobs, key=lambda job: -_size(job.source))
    items = [(job, functools.partial(_read, job.source)) for job in ordered]
    with progress:
        task = progress.add_task("removing backgrounds", total=len(jobs))
        for job, outcome in remove_many(engine, items, opts):
            try:
                if isinstance(outcome, ClearbgError):
                    raise outcome
                _write(job.dest, outcome.data)
            except ClearbgError as exc:
                _report(job, exc)
                failures.append(exc)
            progress.advance(task)
    return failures
