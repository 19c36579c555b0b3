"""The HTTP API (FastAPI), thin over the gateway and the engine: ``create_app(settings)``."""

from clearbg.api.app import create_app

__all__ = ["create_app"]
