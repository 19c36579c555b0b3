"""The engine: a pure library (no HTTP, no database, no environment) that makes cut-outs."""

from clearbg.engine.models import MODELS, ModelSpec, ModelStore
from clearbg.engine.options import Margin, RemoveOptions
from clearbg.engine.pipeline import Box, Cutout, Engine

__all__ = [
    "MODELS",
    "Box",
    "Cutout",
    "Engine",
    "Margin",
    "ModelSpec",
    "ModelStore",
    "RemoveOptions",
]
