"""``engine.backdrop``: placing a cut-out's subject and laying it over a photo, on tiny images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clearbg.engine.backdrop import (
    Placement,
    compose_over,
    parse_percent,
    parse_position,
    parse_region,
)
from clearbg.engine.imageio import Pixels
from clearbg.errors import InvalidOptionError


def cutout(w: int = 40, h: int = 20) -> bytes:
    """A transparent canvas with an opaque green 10x10 square at (5, 5)."""
    a = np.zeros((h, w, 4), dtype=np.uint8)
    a[5:15, 5:15] = (0, 255, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"))


def test_parsers() -> None:
    assert parse_percent("scale", "80%") == 0.8
    assert parse_position("center") == (0.5, 0.5)
    assert parse_position("0% 100%") == (0.0, 1.0)
    assert parse_position("25%") == (0.25, 0.25)
    assert parse_region("0 0 20px 50%", (40, 20)) == (0.0, 0.0, 0.5, 0.5)
    for bad in ("80", "120%", "x%"):
        with pytest.raises(InvalidOptionError):
            parse_percent("scale", bad)
    with pytest.raises(InvalidOptionError):
        parse_region("50% 0% 10% 100%", (40, 20))


def test_nothing_asked_keeps_the_cutout() -> None:
    data, w, h, _ = compose_over(cutout(), Placement(), None, None, "png")
    assert (w, h) == (40, 20)
    assert np.array_equal(pixels(data), pixels(cutout()))


def test_scale_and_position_move_the_square() -> None:
    data, _, _, _ = compose_over(cutout(), Placement(0.5, (1.0, 1.0)), None, None, "png")
    alpha = pixels(data)[:, :, 3]
    rows, cols = np.flatnonzero(alpha.max(axis=1)), np.flatnonzero(alpha.max(axis=0))
    assert (rows[0], rows[-1], cols[-1]) == (10, 19, 39)  # 10 px high: half of 20, bottom right


def test_a_region_removes_what_lies_outside() -> None:
    data, _, _, _ = compose_over(cutout(), Placement(region=(0, 0, 0.25, 1)), None, None, "png")
    alpha = pixels(data)[:, :, 3]
    assert alpha[:, 10:].max() == 0
    assert alpha[5:15, 5:10].min() == 255


def test_a_background_photo_covers_the_canvas() -> None:
    red = np.zeros((10, 10, 3), dtype=np.uint8)
    red[:, :, 0] = 255
    data, _, _, _ = compose_over(cutout(), Placement(), Pixels(red), None, "jpg")
    rgb = pixels(data)[:, :, :3].astype(int)
    assert rgb[0, 0, 0] > 230 and rgb[0, 0, 1] < 30  # the photo
    assert rgb[10, 10, 1] > 220 and rgb[10, 10, 0] < 40  # the subject


def test_jpeg_without_a_background_is_on_white() -> None:
    data, _, _, _ = compose_over(cutout(), Placement(scale=0.5), None, None, "jpg")
    assert pixels(data)[0, 0, :3].min() > 240
