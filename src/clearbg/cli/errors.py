"""How the CLI reports a ``ClearbgError``: a one-line message and the class's exit code."""

from __future__ import annotations

from typing import NoReturn

import click

from clearbg.errors import ClearbgError


def fail(error: ClearbgError) -> NoReturn:
    """Print ``Error [code]: message`` on stderr and end with the error's exit code."""
    click.echo(f"Error [{error.code}]: {error.message}", err=True)
    click.get_current_context().exit(error.exit_code)
    raise AssertionError("unreachable")  # Context.exit raises; this satisfies NoReturn
