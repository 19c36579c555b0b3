"""Edge colour: a cut-out must not carry the old background into its soft edge pixels.

A real photo from the alphamatting.com set is composited with its own ground-truth alpha onto
pure green; the foreground estimated from that composite (with the same alpha) should come back
near the photo's colour in the soft band, and rembg's way (colour x alpha stored as colour) should
not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.refine import estimate_foreground

MATTING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "matting"
GREEN = np.array([0, 255, 0], dtype=np.float32)
# mean absolute error per channel (0..255) in the soft band, photo colour as reference
THRESHOLD = 36.0


def _load(name: str) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    photo = np.asarray(Image.open(MATTING / "images" / name).convert("RGB"), dtype=np.float32)
    alpha = np.asarray(Image.open(MATTING / "masks" / name).convert("L"), dtype=np.float32) / 255
    return photo, alpha


@pytest.mark.parametrize("name", ["GT03.png", "GT13.png"])
def test_soft_edges_keep_the_subjects_colour_not_the_green_behind(name: str) -> None:
    photo, alpha = _load(name)
    a = alpha[..., None]
    on_green = (photo * a + GREEN * (1 - a) + 0.5).astype(np.uint8)
    band = (alpha > 0.05) & (alpha < 0.95)
    assert band.sum() > 1000

    ours = estimate_foreground(on_green, alpha).astype(np.float32)
    rembg_style = on_green.astype(np.float32) * a  # premultiplied colour stored as colour

    ours_err = float(np.abs(ours - photo)[band].mean())
    rembg_err = float(np.abs(rembg_style - photo)[band].mean())
    print(f"{name}: mean error in the soft band, ours {ours_err:.1f}, rembg-style {rembg_err:.1f}")
    assert ours_err < THRESHOLD <= rembg_err
    # where alpha is 1 the photo passes unchanged
    solid = alpha >= 1
    assert np.array_equal(ours[solid], on_green[solid].astype(np.float32))
