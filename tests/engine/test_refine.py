"""refine_alpha and estimate_foreground on tiny arrays."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.typing import NDArray

from clearbg.engine.refine import (
    estimate_foreground,
    guided_filter,
    refine_alpha,
    uncertain_band,
)
from tests.engine.synthetic import soft_step, two_colours


def _two_colours() -> NDArray[np.uint8]:
    return two_colours(100, 100, 50)


def _blurred_step() -> NDArray[np.float32]:
    return soft_step(100, 100, 50.0, 6.0)


def test_refined_alpha_snaps_a_blurred_mask_to_the_photos_edge() -> None:
    rgb = _two_colours()
    coarse = _blurred_step()
    out = refine_alpha(rgb, coarse)
    assert out.dtype == np.float32 and out.shape == coarse.shape
    assert out.min() >= 0 and out.max() <= 1
    # the mask's soft ramp (columns 47..53) gets its steepest step where the colour changes
    jumps = out[:, :-1] - out[:, 1:]
    assert (jumps.argmax(axis=1) == 49).all()
    assert jumps[:, 49].min() > 0.5
    assert (coarse[:, 49] - coarse[:, 50]).max() < 0.2
    # far from the edge the model's values stay
    assert np.array_equal(out[:, :30], coarse[:, :30]) and np.array_equal(
        out[:, 70:], coarse[:, 70:]
    )


def test_sure_regions_keep_the_models_values() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    coarse = np.zeros((30, 30), np.float32)
    coarse[:, :15] = 1
    out = refine_alpha(rgb, coarse)
    band = uncertain_band(coarse, 2)
    assert np.array_equal(out[~band], coarse[~band])


def test_guided_filter_of_a_constant_is_that_constant() -> None:
    guide = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    src = np.full((16, 16), 0.3, np.float32)
    assert np.allclose(guided_filter(guide, src, 2, 1e-3), 0.3, atol=1e-4)
    assert np.allclose(guided_filter(guide, src, 4, 1e-3, step=2), 0.3, atol=1e-4)


def test_more_passes_sharpen_further() -> None:
    rgb, coarse = _two_colours(), _blurred_step()
    step = (np.arange(100) < 50).astype(np.float32)
    errors = [float(np.abs(refine_alpha(rgb, coarse, n) - step).mean()) for n in (1, 3)]
    assert errors[1] < errors[0] < float(np.abs(coarse - step).mean())
    with pytest.raises(ValueError):
        refine_alpha(rgb, coarse, 0)


def test_mismatched_sizes_are_an_error() -> None:
    with pytest.raises(ValueError):
        refine_alpha(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError):
        estimate_foreground(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.float32))


def test_foreground_removes_the_background_from_a_mixed_pixel() -> None:
    # red subject, green background, a column blended half and half between them
    h, w = 20, 21
    fg, bg = np.array([200, 20, 20], np.float32), np.array([0, 255, 0], np.float32)
    alpha = np.zeros((h, w), np.float32)
    alpha[:, :10] = 1
    alpha[:, 10] = 0.5
    a = alpha[..., None]
    rgb = (fg * a + bg * (1 - a) + 0.5).astype(np.uint8)
    out = estimate_foreground(rgb, alpha)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out[:, :10], rgb[:, :10])  # alpha 1: the photo as it is
    mixed = out[:, 10].astype(np.float32)
    assert np.abs(mixed - fg).max() < 12  # the subject's red, not the blend
    assert np.abs(rgb[:, 10].astype(np.float32) - fg).max() > 100  # which was far off


def test_foreground_of_an_opaque_photo_is_the_photo() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert np.array_equal(estimate_foreground(rgb, np.ones((8, 9), np.float32)), rgb)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 48)])
def test_empty_and_full_masks_and_tiny_images_pass_through(shape: tuple[int, int]) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for value in (0.0, 1.0):
        coarse = np.full(shape, value, np.float32)
        assert np.array_equal(refine_alpha(rgb, coarse), coarse)
    alpha = np.full(shape, 0.5, np.float32)
    assert estimate_foreground(rgb, alpha).shape == rgb.shape


def test_foreground_on_a_pool_is_the_same_and_keeps_each_channel_in_its_place() -> None:
    # big enough that the wide pass runs on its coarser grid (side 300: a step of 3)
    rgb = two_colours(300, 400, 200, noise=20)
    rgb[:, :, 2] = np.random.default_rng(4).integers(0, 256, (300, 400), dtype=np.uint8)
    alpha = soft_step(300, 400, 200.0, 8.0)
    alone = estimate_foreground(rgb, alpha)
    with ThreadPoolExecutor(2) as pool:
        assert np.array_equal(estimate_foreground(rgb, alpha, pool), alone)
        # the planes are fused apart: the channels swapped in give them swapped out
        swapped = estimate_foreground(np.ascontiguousarray(rgb[:, :, ::-1]), alpha, pool)
    assert np.array_equal(swapped, alone[:, :, ::-1])
