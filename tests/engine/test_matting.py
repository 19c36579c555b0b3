"""Trimap, the matrix-free matting Laplacian and matte_alpha on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from clearbg.engine.matting import (
    MattingLaplacian,
    anchor,
    harden,
    matte_alpha,
    solve_matte,
    trimap,
)
from tests.engine.synthetic import soft_step, two_colours


def _two_colours() -> NDArray[np.uint8]:
    return two_colours(60, 60, 30, noise=6)


def _ramp() -> NDArray[np.float32]:
    return soft_step(60, 60, 30.0, 10.0, offset=0.5)


def test_the_laplacian_is_symmetric_and_positive_semidefinite() -> None:
    rng = np.random.default_rng(1)
    lap = MattingLaplacian(rng.random((12, 14, 3)).astype(np.float32), radius=1)
    # in float32, as the solve runs: n x is about 6 here, so 1e-6 is float32's own rounding
    x, y = rng.random((12, 14), np.float32), rng.random((12, 14), np.float32)
    assert lap(x).dtype == np.float32
    assert float((x * lap(y)).sum()) == pytest.approx(float((y * lap(x)).sum()), rel=1e-5)
    assert float((x * lap(x)).sum()) >= -1e-5
    # a constant alpha, and one affine in the colour, fit every window: no cost
    assert np.abs(lap(np.full((12, 14), 0.7, np.float32))).max() < 1e-5


def test_trimap_leaves_an_unknown_band_around_the_contour() -> None:
    fg, bg = trimap(_ramp(), 3)  # 0.5 at column 29.5, 0.25 at 32
    unknown = ~(fg | bg)
    assert fg[:, :27].all() and bg[:, 36:].all()
    assert unknown[:, 27:36].all() and not (fg & bg).any()


def test_trimap_takes_the_models_in_whole_and_leaves_its_leaning_parts_to_the_photo() -> None:
    coarse = np.full((40, 40), 0.05, np.float32)
    coarse[:, :20] = 0.6  # a grey cast over the subject: in
    coarse[10:30, 30:38] = 0.4  # a part the model leans towards without being sure of
    fg, bg = trimap(coarse, 3)
    unknown = ~(fg | bg)
    assert fg[:, :16].all()
    assert unknown[14:26, 32:36].all()
    assert bg[:5, 25:].all() and bg[35:, 25:].all()


def test_the_solve_puts_a_blurred_edge_where_the_colour_changes() -> None:
    rgb = _two_colours()
    coarse = _ramp()
    fg, bg = trimap(coarse, 3)
    unknown = ~(fg | bg)
    lap = MattingLaplacian(rgb.astype(np.float32) / 255)
    zero = np.zeros(coarse.shape)
    alpha = solve_matte(lap, fg.astype(np.float64), unknown, coarse.astype(np.float64), zero, 200)
    assert alpha[:, 22:29].min() > 0.9  # red: the subject, though the mask said 0.6..0.9
    assert alpha[:, 31:38].max() < 0.1  # blue: background, though the mask said 0.1..0.4
    assert np.array_equal(alpha[fg], np.ones(int(fg.sum())))


def test_matte_alpha_sharpens_the_edge_and_keeps_sure_regions() -> None:
    rgb = _two_colours()
    coarse = _ramp()
    out = matte_alpha(rgb, coarse)
    assert out.dtype == np.float32 and out.shape == coarse.shape
    assert out.min() >= 0 and out.max() <= 1
    assert (
        np.abs(out - (np.arange(60) < 30)[None, :]).mean()
        < np.abs(coarse - (np.arange(60) < 30)[None, :]).mean() / 4
    )
    assert (out[:, :10] == 1).all() and (out[:, 50:] == 0).all()


def test_matte_alpha_on_a_reduced_grid_is_brought_back_to_full_size() -> None:
    rgb = np.repeat(np.repeat(_two_colours(), 4, axis=0), 4, axis=1)
    coarse = np.repeat(np.repeat(_ramp(), 4, axis=0), 4, axis=1)
    out = matte_alpha(rgb, coarse, work_pixels=60 * 60)
    assert out.shape == (240, 240)
    truth = (np.arange(240) < 120)[None, :].astype(np.float32)
    assert np.abs(out - truth).mean() < np.abs(coarse - truth).mean() / 2


def test_away_from_the_edge_a_binary_mask_is_kept() -> None:
    coarse = np.zeros((40, 40), np.float32)
    coarse[:, :20] = 1
    out = matte_alpha(two_colours(40, 40, 20, noise=6), coarse)
    assert (out[:, :14] == 1).all() and (out[:, 26:] == 0).all()


def test_mismatched_sizes_fail() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        matte_alpha(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), np.float32))


def test_harden_clears_faint_haze_and_fills_a_grey_cast_but_keeps_the_middle() -> None:
    alpha = np.array([[0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0]], np.float32)
    out = harden(alpha)
    assert out.dtype == np.float32
    assert np.allclose(out, [[0, 0, 0, 0.3, 0.5, 0.7, 1, 1, 1]], atol=1e-6)
    assert np.array_equal(harden(alpha, 1.0), alpha)
    # the threshold at one half, so a mask's IoU and boundary, never moves
    assert np.array_equal(harden(alpha) > 0.5, alpha > 0.5)


def test_a_matte_of_a_hazy_mask_is_hardened_unless_asked_not_to_be() -> None:
    rgb = _two_colours()
    coarse = _ramp() * np.float32(0.6) + np.float32(0.1)  # a mask that is sure of nothing
    soft = matte_alpha(rgb, coarse, contrast=1.0)
    hard = matte_alpha(rgb, coarse)
    assert np.allclose(hard, harden(soft))
    truth = (np.arange(60) < 30)[None, :].astype(np.float32)
    assert np.abs(hard - truth).mean() < np.abs(soft - truth).mean()


def test_an_anchored_matte_takes_out_but_does_not_bring_in() -> None:
    """A red bar the mask leans towards (0.4) runs from the red subject across the blue
    background: matting takes it in by colour; anchored, the mask's "out" holds."""
    rgb = two_colours(60, 60, 17, noise=6)  # the mask's contour is at 19.5, three px out
    rgb[26:34, 17:58] = (220, 30, 30)
    coarse = soft_step(60, 60, 20.0, 8.0, offset=0.5)
    coarse[26:34, 20:58] = np.maximum(coarse[26:34, 20:58], 0.4)
    free = matte_alpha(rgb, coarse)
    anchored = anchor(free, coarse)
    assert free[26:34, 20:56].min() > 0.9
    assert anchored[26:34, 20:].max() < 0.5 and (anchored[coarse <= 0.5] <= 0.5).all()
    assert (anchored <= free).all()
    # inside the mask's subject the matte stands, taking out what the photo says is blue
    inside = coarse > 0.5
    assert np.array_equal(anchored[inside], free[inside])
    assert anchored[:5, 17:20].max() < 0.1 < coarse[:5, 17:20].min()
