"""What `serve`, `worker` and `migrate` share at start: the settings, read and checked, and
one clear line (not a stack trace) when a setting is wrong."""

from __future__ import annotations

from pydantic import ValidationError

from clearbg.cli.errors import fail
from clearbg.errors import SettingsError
from clearbg.settings import Settings

__all__ = ["load_settings"]


def load_settings() -> Settings:
    """The settings from the environment; a bad one ends the command naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["loc"]:
            name = "CLEARBG_" + "__".join(str(p) for p in first["loc"]).upper()
            message = message if message.startswith("CLEARBG_") else f"{name}: {message}"
        fail(SettingsError(message))
