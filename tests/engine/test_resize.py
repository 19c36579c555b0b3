"""The model's input: the photo as rembg's Pillow resize gives it, up to rounding."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from clearbg.engine.imageio import Pixels
from clearbg.engine.resize import convolve, model_input
from tests.conftest import PHOTOS

PILLOW = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}


@pytest.mark.parametrize(
    ("name", "resample", "size"),
    [("plants-1", "lanczos", (320, 320)), ("car-2", "lanczos", (320, 320)),
     ("animal-2", "bilinear", (1024, 1024))],
)  # fmt: skip
def test_the_model_sees_pillows_resize_up_to_rounding(
    name: str, resample: str, size: tuple[int, int]
) -> None:
    im = Image.open(PHOTOS / f"{name}.jpg").convert("RGB")
    ours = model_input(Pixels(np.asarray(im)), size, resample).astype(int)
    rembg = np.asarray(im.resize(size, PILLOW[resample])).astype(int)
    diff = np.abs(ours - rembg)
    assert ours.shape == (size[1], size[0], 3)
    assert diff.mean() < 0.3
    assert (diff <= 1).mean() > 0.99  # off by one at most, but next to hard edges


def test_a_transparent_photos_colour_is_resized_as_it_is_not_darkened_by_its_alpha() -> None:
    """rembg drops the alpha (``convert("RGB")``) before resizing; a filter that weights colour
    by alpha would give the model other colours where the photo is see-through."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (700, 500, 3), dtype=np.uint8)
    alpha = np.zeros((700, 500, 1), dtype=np.uint8)
    alpha[200:500] = 255
    rgba = np.ascontiguousarray(np.concatenate([rgb, alpha], axis=2))
    seen = model_input(Pixels(rgba), (320, 320), "lanczos")
    assert np.array_equal(seen, model_input(Pixels(rgb), (320, 320), "lanczos"))


def test_a_large_photo_is_reduced_first_and_still_looks_like_the_photo() -> None:
    im = Image.open(PHOTOS / "animal-3.jpg").convert("RGB")
    big = np.asarray(im.resize((im.width * 4, im.height * 4), Image.Resampling.NEAREST))
    with ThreadPoolExecutor(1) as pool:
        seen = model_input(Pixels(big), (320, 320), "lanczos", pool).astype(int)
    rembg = np.asarray(im.resize((320, 320), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(seen - rembg).mean() < 1.5


def test_threads_resizing_at_once_get_what_one_thread_gets() -> None:
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 256, (600 + 40 * i, 900, 3), dtype=np.uint8) for i in range(8)]
    alone = [convolve(p, (320, 320), "lanczos") for p in photos]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: convolve(p, (320, 320), "lanczos"), photos * 3))
    for i, got in enumerate(together):
        assert np.array_equal(got, alone[i % len(photos)])
