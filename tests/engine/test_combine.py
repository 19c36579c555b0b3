"""Combining: a model's mask joined with its companion model's (the default pipeline)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from clearbg.engine import Engine, RemoveOptions
from clearbg.engine.models import MODELS, ModelStore
from clearbg.engine.pipeline import union
from clearbg.errors import InvalidOptionError
from clearbg.settings import EngineSettings
from tests.conftest import PHOTOS


def test_union_keeps_what_either_mask_found_at_the_first_masks_size() -> None:
    mask = np.zeros((4, 4), np.float32)
    mask[:2] = 0.9
    other = np.zeros((2, 2), np.float32)
    other[1, 1] = 0.6  # the bottom-right quarter, at half the size
    joined = union(mask, other)
    assert joined.shape == (4, 4) and joined.dtype == np.float32
    assert (joined[:2] >= 0.9).all()
    assert joined[3, 3] == pytest.approx(0.6)
    assert joined[3, 0] == 0


def test_every_built_in_model_has_a_companion_of_its_own_licence_or_a_permissive_one() -> None:
    assert MODELS["u2net"].companion == "u2netp"
    assert MODELS["u2netp"].companion == "u2net"
    for name in ("isnet", "isnet-quint8"):
        assert MODELS[name].companion == "u2netp"
    for spec in MODELS.values():
        assert spec.companion in MODELS and spec.companion != spec.name
        assert MODELS[spec.companion].licence == "Apache-2.0"


@pytest.fixture
def store_dir(engine_settings: EngineSettings, tmp_path: Path) -> Path:
    """A cache with u2netp and 'mine' (the same file registered as a user's model whose
    companion is u2netp)."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(engine_settings.model_dir / "u2netp.onnx", folder / "u2netp.onnx")
    store = ModelStore(folder)
    store.register("mine", "u2net", folder / "u2netp.onnx", companion="u2netp")
    return folder


@pytest.mark.slow
def test_a_combined_mask_is_the_union_of_both_models_masks(store_dir: Path) -> None:
    engine = Engine(EngineSettings(model_dir=store_dir, default_model="mine", combine=True))
    try:
        photo = (PHOTOS / "animal-1.jpg").read_bytes()
        # the flipped pass of 'mine' differs from u2netp's plain pass, so the union is neither
        own = engine.mask(photo, "mine", flip=True).mask
        other = engine.mask(photo, "u2netp").mask
        joined = engine.mask(photo, "mine", flip=True, combine=True)
        assert np.array_equal(joined.mask, np.maximum(own, other))
        assert (joined.mask > own).any() and (joined.mask > other).any()

        # the default options combine; combine=False gives the model alone
        raw = {"flip": True, "refine": False, "foreground": False, "channels": "alpha"}
        on = engine.remove(photo, RemoveOptions(**raw))  # type: ignore[arg-type]
        off = engine.remove(photo, RemoveOptions(combine=False, **raw))  # type: ignore[arg-type]
        assert on.data != off.data
    finally:
        engine.close()


def test_the_combine_setting_turns_it_off_for_every_request(store_dir: Path) -> None:
    engine = Engine(EngineSettings(model_dir=store_dir, default_model="mine", combine=False))
    try:
        assert engine.companion("mine") is None
    finally:
        engine.close()


def test_a_missing_companion_leaves_the_model_alone_and_says_how_to_fetch_it(
    store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (store_dir / "u2netp.onnx").unlink()
    engine = Engine(EngineSettings(model_dir=store_dir, default_model="mine", combine=True))
    try:
        photo = (PHOTOS / "car-1.jpg").read_bytes()
        with caplog.at_level(logging.WARNING, logger="clearbg.engine.pipeline"):
            alone = engine.mask(photo, combine=True)
            engine.mask(photo, combine=True)
        assert alone.mask.shape == (320, 320)
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1  # once, not per photo
        assert "clearbg models pull u2netp" in warnings[0]
    finally:
        engine.close()


def test_a_users_model_may_name_a_built_in_companion_only(store_dir: Path) -> None:
    store = ModelStore(store_dir)
    with pytest.raises(InvalidOptionError, match="companion"):
        store.register("other", "u2net", store_dir / "mine.onnx", companion="nope")
    with pytest.raises(InvalidOptionError, match="companion"):
        store.register("other", "u2net", store_dir / "mine.onnx", companion="other")
    assert ModelStore(store_dir).spec("mine").companion == "u2netp"  # kept in the registry


@pytest.mark.slow
def test_a_loaded_companion_is_not_looked_for_on_disk_again(
    store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk is asked once, before the companion loads; not on every photo."""
    engine = Engine(EngineSettings(model_dir=store_dir, default_model="mine", combine=True))
    try:
        photo = (PHOTOS / "car-1.jpg").read_bytes()
        before = engine.mask(photo, flip=True, combine=True).mask
        (store_dir / "u2netp.onnx").unlink()  # gone from disk, still loaded
        with caplog.at_level(logging.WARNING, logger="clearbg.engine.pipeline"):
            after = engine.mask(photo, flip=True, combine=True).mask
        assert np.array_equal(before, after) and not caplog.records
    finally:
        engine.close()
