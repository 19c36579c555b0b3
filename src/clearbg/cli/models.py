"""``clearbg models list | pull NAME... | verify [NAME...] | add NAME FILE --family F``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from clearbg.cli.errors import fail
from clearbg.errors import ClearbgError

if TYPE_CHECKING:
    from clearbg.engine.models import ModelStore


def _store() -> ModelStore:
    from clearbg.engine.models import ModelStore
    from clearbg.settings import Settings

    return ModelStore.from_settings(Settings().engine)


# Which pipeline for which photos, with figures from `make eval` (docs/quality.md has them all).
CHOICES = """\
Which to use (inference a photo on 2 cores; docs/quality.md has every figure):
  -m u2netp             fastest (0.25 s), rough edges; runs alone
  -m u2net (default)    one clear subject or a cluttered scene (0.85 s with u2netp)
  -m isnet              hair, fur, fine edges (2 s with u2netp)
  --pipeline best       cluttered scenes, hair and fur (isnet, u2net and u2netp, 2.6 s):
                        IoU .773 MAE .071 on cluttered scenes (default .753 .074, raw
                        u2net .750 .076), hair and fur SAD -39% against raw isnet; one
                        clear subject: no better than the default
  --pipeline best --flip  mirrored passes too (4.9 s): IoU +.006, MAE -.003 more"""


@click.group()
def models() -> None:
    """List, fetch, verify and register models."""


@models.command("list")
def list_models() -> None:
    """Every model with its family, licence, size and whether it is downloaded."""
    from rich.console import Console
    from rich.table import Column, Table

    store = _store()
    table = Table(Column("name", no_wrap=True), "family", "MB", "licence", "state", "description")
    for spec in store.specs():
        st = store.state(spec)
        state = "verified" if st.verified else ("downloaded" if st.present else "-")
        table.add_row(
            spec.name,
            spec.family,
            f"{spec.size / 1e6:.1f}",
            spec.licence,
            state,
            spec.description + (f"; fused with {spec.companion}" if spec.companion else ""),
        )
    Console().print(table)
    click.echo(CHOICES)
    click.echo(f"cache: {store.model_dir}")


@models.command()
@click.argument("names", nargs=-1, required=True)
def pull(names: tuple[str, ...]) -> None:
    """Fetch models into the cache (atomically, checksum verified)."""
    store = _store()
    for name in names:
        try:
            path = store.pull(name, progress=lambda msg: click.echo(msg, err=True))
        except ClearbgError as exc:
            fail(exc)
        click.echo(f"{name}: {path}")


@models.command()
@click.argument("names", nargs=-1)
def verify(names: tuple[str, ...]) -> None:
    """Hash cached models against their checksums (all downloaded ones if no name)."""
    store = _store()
    chosen = list(names) or [s.name for s in store.specs() if store.state(s).present]
    failures: list[ClearbgError] = []
    for name in chosen:  # check every one, then fail with the first error
        try:
            store.verify(name)
        except ClearbgError as exc:
            click.echo(f"{name}: [{exc.code}] {exc.message}", err=True)
            failures.append(exc)
            continue
        click.echo(f"{name}: ok")
    if failures:
        click.get_current_context().exit(failures[0].exit_code)


@models.command()
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--family", required=True, type=click.Choice(["u2net", "isnet"]))
@click.option(
    "--companion",
    default=None,
    help="A built-in model whose mask joins this one's when cut-outs combine (e.g. u2netp).",
)
def add(name: str, file: Path, family: str, companion: str | None) -> None:
    """Register your own ONNX file of a known family under NAME."""
    try:
        spec = _store().register(name, family, file, companion)
    except ClearbgError as exc:
        fail(exc)
    click.echo(f"{spec.name}: registered ({spec.family}, sha256 {spec.sha256[:12]}...)")
