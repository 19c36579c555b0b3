"""From the model's mask to the encoded cut-out: region, scale, alpha, colour, encode.

``layers`` brings the photo and the mask to the output size (cropped and scaled as asked) and
applies refinement; ``render`` composes and encodes. A transparent PNG is composed strip by
strip inside the PNG writer, so a 24 MP cut-out never needs a full-size RGBA copy, and strips
are composed and compressed on two threads.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine import refine
from clearbg.engine.imageio import MEDIA_TYPES, Pixels, encode
from clearbg.engine.options import RemoveOptions, fit_size
from clearbg.engine.png import encode_png_rows

__all__ = ["Box", "Layers", "layers", "render"]

_STRIPS = 8  # the mask is upsampled in this many horizontal strips, in parallel
# The subject (for crop and the foreground box) is where alpha is at least 10%: faint noise
# in the background does not stretch a crop to the whole photo.
SUBJECT_ALPHA = 26


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class Layers:
    """The cut-out before encoding: colour and alpha at the output size."""

    rgb: NDArray[np.uint8]  # HxWx3, may be a view into the decoded photo
    alpha: NDArray[np.uint8]  # HxW
    foreground: Box  # the subject's bounding box (alpha > 0) in output pixels


def _region(
    mask: NDArray[np.float32], size: tuple[int, int], opts: RemoveOptions
) -> tuple[int, int, int, int]:
    """The part of the photo to keep (left, top, right, bottom): all of it, or the subject."""
    w, h = size
    if not opts.crop:
        return 0, 0, w, h
    ys, xs = np.nonzero(mask >= SUBJECT_ALPHA / 255)
    if len(xs) == 0:
        return 0, 0, w, h
    mh, mw = mask.shape
    sx, sy = w / mw, h / mh
    # three mask pixels of slack (Lanczos' reach): the exact edge is found at full resolution
    left, right = max(0, int((xs.min() - 3) * sx)), min(w, int(np.ceil((xs.max() + 4) * sx)))
    top, bottom = max(0, int((ys.min() - 3) * sy)), min(h, int(np.ceil((ys.max() + 4) * sy)))
    mx = opts.crop_margin.pixels(right - left)
    my = opts.crop_margin.pixels(bottom - top)
    return max(0, left - mx), max(0, top - my), min(w, right + mx), min(h, bottom + my)


def _resize(
    a: NDArray[np.uint8], size: tuple[int, int], box: tuple[int, int, int, int]
) -> NDArray[np.uint8]:
    """Crop ``a`` to ``box`` and scale it (down) to ``size``; a view when nothing changes."""
    left, top, right, bottom = box
    view = a[top:bottom, left:right]
    if size == (right - left, bottom - top):
        return view
    im = Image.fromarray(np.ascontiguousarray(view))
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def _upsample_mask(
    mask: NDArray[np.float32],
    photo_size: tuple[int, int],
    region: tuple[int, int, int, int],
    out_size: tuple[int, int],
    pool: Executor | None,
) -> NDArray[np.uint8]:
    """The model's mask at the output size: 8-bit, Lanczos (as rembg does, so raw output
    matches it), computed in horizontal strips on the pool."""
    w, h = photo_size
    mh, mw = mask.shape
    left, top, right, bottom = region
    sx, sy = mw / w, mh / h
    mask8 = Image.fromarray((mask * 255).astype(np.uint8))
    ow, oh = out_size
    step = max(1, -(-oh // _STRIPS))
    out = np.empty((oh, ow), dtype=np.uint8)
    rows_per_out = (bottom - top) * sy / oh

    def strip(y0: int) -> None:
        y1 = min(oh, y0 + step)
        box = (left * sx, top * sy + y0 * rows_per_out, right * sx, top * sy + y1 * rows_per_out)
        part = mask8.resize((ow, y1 - y0), Image.Resampling.LANCZOS, box=box)
        out[y0:y1] = np.asarray(part)

    starts = range(0, oh, step)
    if pool is None:
        for y0 in starts:
            strip(y0)
    else:
        for f in [pool.submit(strip, y0) for y0 in starts]:
            f.result()
    return out


def layers(
    pixels: Pixels, mask: NDArray[np.float32], opts: RemoveOptions, pool: Executor | None
) -> Layers:
    """RGB and alpha at the output size (cropped, scaled), refined as the options ask."""
    w, h = pixels.size
    region = _region(mask, (w, h), opts)
    left, top, right, bottom = region
    out_size = fit_size(right - left, bottom - top, opts.size)
    rgb = _resize(pixels.rgb, out_size, region)
    alpha = _upsample_mask(mask, (w, h), region, out_size, pool)
    if opts.refine or (opts.foreground and opts.channels == "rgba"):
        rgb = np.ascontiguousarray(rgb)
        soft = alpha.astype(np.float32) * np.float32(1 / 255)
        if opts.refine:
            soft = np.clip(refine.refine_alpha(rgb, soft), 0.0, 1.0)
            alpha = (soft * 255 + 0.5).astype(np.uint8)
        if opts.foreground and opts.channels == "rgba":
            rgb = refine.estimate_foreground(rgb, soft)
    if pixels.alpha is not None:  # the photo's own transparency stays transparent
        alpha_in = np.ascontiguousarray(_resize(pixels.alpha, out_size, region))
        alpha = np.asarray(cv2.multiply(alpha, alpha_in, scale=1 / 255), dtype=np.uint8)
    if opts.crop:
        rgb, alpha = _tighten(rgb, alpha, opts)
    return Layers(rgb, alpha, _bbox(alpha))


def _tighten(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], opts: RemoveOptions
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Crop exactly to the subject's pixels plus the margin, within the image."""
    b = _bbox(alpha)
    if b.width == 0:
        return rgb, alpha
    h, w = alpha.shape
    mx, my = opts.crop_margin.pixels(b.width), opts.crop_margin.pixels(b.height)
    x0, y0 = max(0, b.left - mx), max(0, b.top - my)
    x1, y1 = min(w, b.left + b.width + mx), min(h, b.top + b.height + my)
    return rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]


def _bbox(alpha: NDArray[np.uint8]) -> Box:
    """The subject's box: where alpha >= SUBJECT_ALPHA."""
    rows = np.flatnonzero(cv2.reduce(alpha, 1, cv2.REDUCE_MAX).ravel() >= SUBJECT_ALPHA)
    if len(rows) == 0:
        return Box(0, 0, 0, 0)
    band = alpha[rows[0] : rows[-1] + 1]
    cols = np.flatnonzero(cv2.reduce(band, 0, cv2.REDUCE_MAX).ravel() >= SUBJECT_ALPHA)
    return Box(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def _transparent_rows(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], y0: int, y1: int
) -> NDArray[np.uint8]:
    """RGBA rows of a cut-out; fully transparent pixels get colour 0 (nothing hidden, smaller)."""
    a = alpha[y0:y1]
    out = np.empty((y1 - y0, a.shape[1], 4), dtype=np.uint8)
    np.multiply(rgb[y0:y1], (a != 0)[:, :, None], out=out[:, :, :3], casting="unsafe")
    out[:, :, 3] = a
    return out


def _over_rows(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.uint8],
    y0: int,
    y1: int,
    *,
    bg: tuple[int, int, int, int],
    opaque_out: bool,
) -> NDArray[np.uint8]:
    """Rows of the cut-out over a solid colour (whose own alpha may be below 255)."""
    a = alpha[y0:y1].astype(np.float32)[..., None] * np.float32(1 / 255)
    bga = np.float32(1.0 if opaque_out else bg[3] / 255)
    colour = np.asarray(bg[:3], dtype=np.float32)
    out_a = a + bga * (1 - a)
    premul = rgb[y0:y1].astype(np.float32) * a + colour * (bga * (1 - a))
    rgb_out = premul / np.maximum(out_a, np.float32(1e-6))
    rgb8 = np.clip(rgb_out + 0.5, 0, 255).astype(np.uint8)
    if opaque_out or bga >= 1:
        return rgb8
    return np.dstack((rgb8, np.clip(out_a[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)))


def render(lay: Layers, opts: RemoveOptions, pool: Executor | None) -> tuple[bytes, str]:
    """Compose and encode: PNG, JPEG or WebP bytes and the media type."""
    fmt = opts.format
    rgb, alpha = lay.rgb, lay.alpha
    h, w = alpha.shape
    if opts.channels == "alpha":
        if fmt == "png":
            return encode_png_rows(
                w, h, 1, lambda y0, y1: alpha[y0:y1], executor=pool
            ), MEDIA_TYPES[fmt]
        return encode(np.ascontiguousarray(alpha), fmt, opts.quality), MEDIA_TYPES[fmt]
    bg = opts.bg_color
    if bg is None and fmt == "jpg":
        bg = (255, 255, 255, 255)
    if bg is None:
        channels = 4

        def rows(y0: int, y1: int) -> NDArray[np.uint8]:
            return _transparent_rows(rgb, alpha, y0, y1)
    else:
        opaque = fmt == "jpg" or bg[3] == 255
        channels = 3 if opaque else 4
        colour = bg

        def rows(y0: int, y1: int) -> NDArray[np.uint8]:
            return _over_rows(rgb, alpha, y0, y1, bg=colour, opaque_out=fmt == "jpg")

    if fmt == "png":
        return encode_png_rows(w, h, channels, rows, executor=pool), MEDIA_TYPES[fmt]
    return encode(rows(0, h), fmt, opts.quality), MEDIA_TYPES[fmt]
