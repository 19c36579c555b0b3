"""Shared fixtures: the real u2netp model from the user's cache, the shared photos."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearbg.engine import Engine
from clearbg.settings import EngineSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PHOTOS = DATA / "photos"

# `make test` fetches u2netp only (which has no companion): the suite runs each model alone
# (here and in every server it starts), and tests/engine/test_combine.py turns combining on
# with a companion it has.
os.environ.setdefault("CLEARBG_ENGINE__COMBINE", "false")


@pytest.fixture(scope="session")
def engine_settings() -> EngineSettings:
    """Settings that use the small u2netp model (fetched by `make test`) from the normal cache."""
    base = Settings().engine
    return base.model_copy(update={"default_model": "u2netp"})


@pytest.fixture(scope="session")
def engine(engine_settings: EngineSettings) -> Iterator[Engine]:
    eng = Engine(engine_settings)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def photo_bytes() -> bytes:
    return (PHOTOS / "car-1.jpg").read_bytes()
