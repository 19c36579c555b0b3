"""Combining: a model's mask joined with its companion model's (the default pipeline)."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearbg.engine import Engine, RemoveOptions
from clearbg.engine.imageio import Pixels
from clearbg.engine.models import MODELS, ModelStore
from clearbg.engine.pipeline import MaskResult, average, fuse
from clearbg.errors import InvalidOptionError
from clearbg.settings import EngineSettings
from tests.conftest import PHOTOS
from tests.engine.synthetic import soft_step, two_colours


def test_fuse_adds_the_companions_sure_parts_that_touch_the_subject_at_half_strength() -> None:
    mask = np.zeros((8, 8), np.float32)
    mask[:4, :4] = 0.9  # the subject, top left
    other = np.zeros((8, 8), np.float32)
    other[2:6, 2:6] = 0.8  # the subject and a part of it the model missed
    other[0:2, 6:8] = 0.3  # faint haze over the background: not sure
    other[7, 0:2] = 0.7  # another object, apart from the subject
    fused = fuse(mask, other)
    assert fused.dtype == np.float32
    assert (fused[:4, :4] >= 0.9).all()
    assert (fused[4:6, 4:6] == np.float32(0.4)).all()  # the missed part, at half strength
    assert (fused[0:2, 6:8] == 0).all()  # no haze
    assert (fused[7, 0:2] == 0).all()  # no other object


def test_a_companion_that_finds_nothing_sure_leaves_the_mask_as_it_is() -> None:
    mask = np.random.default_rng(0).random((6, 6)).astype(np.float32)
    assert np.array_equal(fuse(mask, np.full((6, 6), 0.4, np.float32)), mask)


def test_average_is_the_mean_of_both_masks_at_the_first_ones_size() -> None:
    mask = np.ones((4, 4), np.float32)
    other = np.zeros((2, 2), np.float32)
    assert np.allclose(average(mask, other), 0.5) and average(mask, other).shape == (4, 4)


def test_the_small_model_runs_alone_and_the_others_with_a_permissive_companion() -> None:
    """u2netp is chosen for speed: a companion would cost it three times its own inference."""
    assert MODELS["u2netp"].companion is None
    assert MODELS["u2net"].companion == "u2netp"
    for name in ("isnet", "isnet-quint8"):
        assert MODELS[name].companion == "u2netp"
    for spec in MODELS.values():
        if spec.companion is not None:
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
def test_a_combined_mask_is_fused_with_the_companions(store_dir: Path) -> None:
    engine = Engine(EngineSettings(model_dir=store_dir, default_model="mine", combine=True))
    try:
        photo = (PHOTOS / "animal-1.jpg").read_bytes()
        # the flipped pass of 'mine' differs from u2netp's plain pass, so the fusion is neither
        own = engine.mask(photo, "mine", flip=True).mask
        other = engine.mask(photo, "u2netp").mask
        joined = engine.mask(photo, "mine", flip=True, combine=True)
        assert np.array_equal(joined.mask, fuse(own, other))
        assert (joined.mask > own).any() and (joined.mask < other).any()

        # the default options combine; combine=False gives the model alone
        raw = {"flip": True, "refine": False, "foreground": False, "channels": "alpha"}
        on = engine.remove(photo, RemoveOptions(**raw))  # type: ignore[arg-type]
        off = engine.remove(photo, RemoveOptions(combine=False, **raw))  # type: ignore[arg-type]
        assert on.data != off.data
    finally:
        engine.close()


def test_a_partner_models_mask_is_averaged_in(engine_settings: EngineSettings) -> None:
    """The best pipeline's engine path, with u2netp standing in for isnet."""
    if not ModelStore.from_settings(engine_settings).state(MODELS["u2net"]).present:
        pytest.skip("u2net is not downloaded (`make test` fetches u2netp only)")
    engine = Engine(engine_settings)
    try:
        photo = (PHOTOS / "animal-1.jpg").read_bytes()
        own = engine.mask(photo, "u2netp").mask
        other = engine.mask(photo, "u2net").mask
        both = engine.mask(photo, "u2netp", combine=True, partner="u2net")
        assert np.allclose(both.mask, average(own, other), atol=1e-6)
        assert not np.allclose(both.mask, own, atol=0.05)
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


def test_the_best_pipelines_matte_does_not_bring_in_what_the_ensemble_left_out(
    engine: Engine,
) -> None:
    """A red bar the ensemble leans towards (0.4) runs from the red subject across the blue
    background: the default refinement takes it in by colour, the best pipeline's does not."""
    rgb = two_colours(60, 60, 17, noise=6)
    rgb[26:34, 17:58] = (220, 30, 30)
    mask = soft_step(60, 60, 20.0, 8.0, offset=0.5)
    mask[26:34, 17:58] = np.maximum(mask[26:34, 17:58], 0.4)
    result = MaskResult(Pixels(rgb), mask, "isnet", 0.0, 0.0)

    def alpha(pipeline: str) -> np.ndarray:
        opts = RemoveOptions.parse(pipeline=pipeline, channels="alpha", foreground=False)
        return np.asarray(Image.open(io.BytesIO(engine.finish(result, opts).data)))

    default, best = alpha("default"), alpha("best")
    assert default[26:34, 20:56].min() > 230
    assert best[26:34, 20:].max() < 128
    assert best[:, :10].min() == 255 and (best <= default).all()
