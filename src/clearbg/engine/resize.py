"""The photo resized to a model's input.

rembg resizes with Pillow's Lanczos (bilinear for some families). Pillow's filters are plain C,
one pixel at a time: on a 1.5 MP photo the resize took 11-15 ms of one core, a quarter of
everything we add to inference. fast_image_resize (the ``cykooz.resizer`` package, Rust with
AVX2) computes the same convolution five times faster. It is not bit-exact: its fixed-point
rounding differs, so about one value in three is off by one, and a few by more next to hard
edges (ringing clipped at another step). The masks move by 0.0001-0.0010 mean absolute alpha on
../shared/data/photos, a fifth of the parity budget at most (README, "Speed and memory").
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import Executor
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.imageio import Pixels

__all__ = ["convolve", "model_input"]

_FILTERS = {"lanczos": "lanczos3", "bilinear": "bilinear"}  # a family's name -> the library's
# one Resizer a thread: a shared one takes its calls one at a time. Two threads resizing 72
# 1.5 MP photos: 0.20-0.22 s with one, 0.18-0.19 s with one each, 0.22-0.28 s one after another
# (with the library's threads below; without them 0.72, 0.38 and 0.76 s)
_local = threading.local()


@functools.cache
def _threads() -> Any:
    """The library's own two threads (one pool for the process), which share each resize:
    1.5 MP to 320x320 in 1.9 ms instead of 2.4 ms, the very same pixels."""
    from cykooz_resizer import ResizerThreadPool

    return ResizerThreadPool(2)


def _resizer() -> tuple[Any, dict[str, Any]]:
    """This thread's resizer and its options per filter (imported on first use)."""
    made: tuple[Any, dict[str, Any]] | None = getattr(_local, "resizer", None)
    if made is None:
        from cykooz_resizer import FilterType, ResizeAlg, ResizeOptions, Resizer

        options = {
            ours: ResizeOptions(
                resize_alg=ResizeAlg.convolution(getattr(FilterType, theirs)),
                use_alpha=False,
                thread_pool=_threads(),
            )
            for ours, theirs in _FILTERS.items()
        }
        made = _local.resizer = (Resizer(), options)
    return made


def convolve(pixels: NDArray[np.uint8], size: tuple[int, int], resample: str) -> NDArray[np.uint8]:
    """HxWx3 (RGB) or HxWx4 (RGBA, its alpha ignored as rembg's ``convert("RGB")`` does)
    ``pixels`` resized to ``size`` (width, height) with the family's filter, as RGB."""
    resizer, options = _resizer()
    if pixels.shape[2] != 4 or not pixels.flags.c_contiguous:
        return _convolve_rgb(resizer, pixels[:, :, :3], size, options[resample])
    # four bytes a pixel, as Pillow stores them: wrapped in place, not copied (5.85 MB at
    # 1.5 MP). As "CMYK", a mode without alpha, so the fourth channel is filtered on its own
    # and never weights the colour (as "RGBA" it would: premultiplied).
    h, w = pixels.shape[:2]
    src = Image.frombuffer("CMYK", (w, h), pixels, "raw", "CMYK", 0, 1)
    dst = Image.new("CMYK", size)
    resizer.resize_pil(src, dst, options[resample])  # lets go of the GIL
    return np.ascontiguousarray(np.asarray(dst)[:, :, :3])


def _convolve_rgb(
    resizer: Any, pixels: NDArray[np.uint8], size: tuple[int, int], options: Any
) -> NDArray[np.uint8]:
    """Three bytes a pixel resized as three bytes a pixel: a Pillow RGB image would hold four
    (the copy into it, and the fourth channel's filtering, made a 1.5 MP photo's resize take
    4.0 ms instead of 2.6; the very same pixels). The library takes its pixels as bytes, which
    ``tobytes`` gives in row order from any view."""
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
