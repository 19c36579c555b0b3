"""The ``clearbg`` command line. Commands live one per module and are imported only when run,
so ``clearbg --help`` starts without loading numpy or ONNX Runtime."""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["main"]

# command name -> (module, attribute, one-line help shown by --help without importing it)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "remove": ("clearbg.cli.remove", "remove", "Remove the background of photos."),
    "models": ("clearbg.cli.models", "models", "List, fetch, verify and register models."),
    "serve": ("clearbg.cli.serve", "serve", "Run the HTTP API."),
    "worker": ("clearbg.cli.worker", "worker", "Run the bulk-job consumer alone."),
    "migrate": ("clearbg.cli.migrate", "migrate", "Apply the database migrations."),
    # clearbg.cli.users adds `admin users` to the admin group of clearbg.cli.admin
    "admin": ("clearbg.cli.users", "admin", "Applications, keys, credits, usage and users."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attr, _ = _COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clearbg")
def main() -> None:
    """ClearBG: self-hosted background removal."""


def run(args: list[str] | None = None) -> Any:
    return main.main(args=args, standalone_mode=False)
