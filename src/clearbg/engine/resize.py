"""The photo resized to a model's input.

rembg resizes with Pillow's Lanczos (bilinear for some families), plain C one pixel at a time;
fast_image_resize (the ``cykooz.resizer`` package, Rust with SIMD) computes the same convolution
several times faster. It is not bit-exact (its fixed-point rounding differs by one level here
and there); the masks stay within the parity target (``python bench/bench.py --only e2e``).
"""

from __future__ import annotations

import functools
from concurrent.futures import Executor
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.imageio import Pixels

__all__ = ["convolve", "model_input"]

_FILTERS = {"lanczos": "lanczos3", "bilinear": "bilinear"}  # a family's name -> the library's


@functools.cache
def _options(resample: str) -> Any:
    """The library's options for a family's filter (imported on first use)."""
    from cykooz_resizer import FilterType, ResizeAlg, ResizeOptions

    kind = getattr(FilterType, _FILTERS[resample])
    return ResizeOptions(resize_alg=ResizeAlg.convolution(kind), use_alpha=False)


def convolve(pixels: NDArray[np.uint8], size: tuple[int, int], resample: str) -> NDArray[np.uint8]:
    """HxWx3 (RGB) or HxWx4 (RGBA, its alpha ignored as rembg's ``convert("RGB")`` does)
    ``pixels`` resized to ``size`` (width, height) with the family's filter, as RGB."""
    from cykooz_resizer import Resizer

    resizer, options = Resizer(), _options(resample)  # a Resizer works one call at a time
    if pixels.shape[2] != 4 or not pixels.flags.c_contiguous:
        return _convolve_rgb(resizer, pixels[:, :, :3], size, options)
    # four bytes a pixel wrapped in place: copying out the three colour bytes first costs more
    # than the resize. As "CMYK", a mode without alpha, so the fourth channel is filtered on
    # its own and never weights the colour (as "RGBA" it would: premultiplied).
    h, w = pixels.shape[:2]
    src = Image.frombuffer("CMYK", (w, h), pixels, "raw", "CMYK", 0, 1)
    dst = Image.new("CMYK", size)
    resizer.resize_pil(src, dst, options)  # lets go of the GIL
    return np.ascontiguousarray(np.asarray(dst)[:, :, :3])


def _convolve_rgb(
    resizer: Any, pixels: NDArray[np.uint8], size: tuple[int, int], options: Any
) -> NDArray[np.uint8]:
    """Three bytes a pixel resized as three bytes a pixel (a Pillow RGB image would hold four:
    a copy into it, and a fourth channel to filter). The library takes its pixels as bytes,
    which ``tobytes`` gives in row order from any view."""
    from cykooz_resizer import ImageData, PixelType

    h, w = pixels.shape[:2]
    src = ImageData(w, h, PixelType.U8x3, pixels.tobytes())
    dst = ImageData(size[0], size[1], PixelType.U8x3)
    resizer.resize(src, dst, options)
    return np.frombuffer(dst.get_buffer(), dtype=np.uint8).reshape(size[1], size[0], 3)


def model_input(
    image: Pixels, size: tuple[int, int], resample: str, pool: Executor | None = None
) -> NDArray[np.uint8]:
    """The photo resized to the model's input: first a box reduction by a whole factor when it
    is three times the input or more (its two halves on the pool), then the family's filter."""
    data = image.data
    h, w = data.shape[:2]
    fx, fy = max(1, w // (3 * size[0])), max(1, h // (3 * size[1]))
    if fx > 1 or fy > 1:
        # whole blocks only (at most fx-1 columns and fy-1 rows left out): OpenCV's exact
        # integer-factor path, twice as fast as a fractional one
        rows, cols = h // fy, w // fx
        mid = rows // 2

        def reduce(r0: int, r1: int) -> NDArray[np.uint8]:
            block = data[r0 * fy : r1 * fy, : cols * fx]
            out = cv2.resize(block, (cols, r1 - r0), interpolation=cv2.INTER_AREA)
            return np.asarray(out, dtype=np.uint8)

        if pool is None or mid == 0:
            data = reduce(0, rows)
        else:
            top = pool.submit(reduce, 0, mid)
            bottom = reduce(mid, rows)
            data = np.concatenate([top.result(), bottom])
    return convolve(data, size, resample)
