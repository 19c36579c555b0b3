"""From the model's mask to the encoded cut-out: region, scale, alpha, colour, encode.

``layers`` brings the photo and the mask to the output size (cropped and scaled as asked) and
applies refinement; ``render`` composes and encodes. Without refinement, the alpha itself is made
strip by strip inside the PNG writer (upsample, the photo's own alpha, compose, filter,
compress, on two threads), so a 24 MP cut-out never has a full-size alpha or RGBA copy and its
strips stay in the CPU's caches.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine import matting, refine
from clearbg.engine.imageio import MEDIA_TYPES, Pixels, encode
from clearbg.engine.options import RemoveOptions, fit_size
from clearbg.engine.png import encode_png_rows
from clearbg.engine.turns import run_in_turn

__all__ = ["Box", "Layers", "layers", "render"]

_STRIPS = 8  # rows composed for JPEG and WebP in this many strips, in parallel
# The subject (for crop and the foreground box) is where alpha is at least 10%: faint noise
# in the background does not stretch a crop to the whole photo.
SUBJECT_ALPHA = 26
REFINE_PIXELS = 2_000_000  # refinement works on at most this many pixels (see _refined)


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


def _extent(alpha: NDArray[np.uint8], least: int) -> tuple[int, int, int, int] | None:
    """The rows and columns (top, bottom, left, right; ends exclusive) that hold every pixel
    whose alpha is at least ``least``, or None when there is none."""
    rows = np.flatnonzero(alpha.max(axis=1) >= least)
    if len(rows) == 0:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(alpha[top:bottom].max(axis=0) >= least)
    return top, bottom, int(cols[0]), int(cols[-1]) + 1


class _BoxTracker:
    """The subject's bounding box, gathered from alpha strips as they are produced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._box: list[int] | None = None  # left, top, right, bottom (exclusive)

    def add(self, y0: int, alpha: NDArray[np.uint8]) -> None:
        extent = _extent(alpha, SUBJECT_ALPHA)
        if extent is None:
            return
        top, bottom, left, right = extent
        found = [left, y0 + top, right, y0 + bottom]
        with self._lock:
            if self._box is None:
                self._box = found
            else:
                b = self._box
                self._box = [
                    min(b[0], found[0]),
                    min(b[1], found[1]),
                    max(b[2], found[2]),
                    max(b[3], found[3]),
                ]

    def box(self) -> Box:
        if self._box is None:
            return Box(0, 0, 0, 0)
        left, top, right, bottom = self._box
        return Box(left, top, right - left, bottom - top)


def subject_box(alpha: NDArray[np.uint8]) -> Box:
    """The box of the subject in a whole alpha channel, as ``Cutout.foreground`` gives it."""
    found = _BoxTracker()
    found.add(0, alpha)
    return found.box()


AlphaRows = Callable[[int, int], NDArray[np.uint8]]


@dataclass
class Layers:
    """The cut-out before encoding: colour at the output size, and its alpha row by row.

    Without refinement the alpha is computed strip by strip while the image is encoded, never
    as a whole; the subject's box is gathered on the way (``foreground()`` after rendering).
    """

    rgb: NDArray[np.uint8]  # HxWx3, may be a view into the decoded photo
    width: int
    height: int
    alpha_rows: AlphaRows
    tracker: _BoxTracker
    icc: bytes | None = None  # the photo's colour profile, embedded in the cut-out

    def foreground(self) -> Box:
        return self.tracker.box()


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
    im = Image.fromarray(_own(view))
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def _upsample_mask(
    mask: NDArray[np.float32],
    photo_size: tuple[int, int],
    region: tuple[int, int, int, int],
    out_size: tuple[int, int],
) -> NDArray[np.uint8]:
    """The model's mask over ``region`` of the photo, at the output size, 8-bit.

    Truncated to 8 bits first, as rembg does, then bicubic (OpenCV, SIMD and threaded): close
    to rembg's Lanczos (the parity figure of ``bench/bench.py --only raw,e2e``), much faster.
    """
    w, h = photo_size
    mh, mw = mask.shape
    left, top, right, bottom = region
    ow, oh = out_size
    mask8 = (mask * 255).astype(np.uint8)
    if out_size == (right - left, bottom - top) and region != (0, 0, w, h):
        # a crop at full scale: the very pixels of the uncropped cut-out
        return _upsample_mask(mask, photo_size, (0, 0, w, h), photo_size)[top:bottom, left:right]
    if region == (0, 0, w, h):
        shrinking = ow < mw or oh < mh
        method = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        return np.asarray(cv2.resize(mask8, out_size, interpolation=method), dtype=np.uint8)
    # a part of the photo: map each output pixel's centre into the mask's pixel grid
    kx, ky = (right - left) * mw / (w * ow), (bottom - top) * mh / (h * oh)
    bx, by = left * mw / w - 0.5 + 0.5 * kx, top * mh / h - 0.5 + 0.5 * ky
    matrix = np.array([[kx, 0.0, bx], [0.0, ky, by]], dtype=np.float64)
    out = cv2.warpAffine(
        mask8,
        matrix,
        out_size,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, dtype=np.uint8)


def _gather(rows: AlphaRows, height: int, pool: Executor | None) -> NDArray[np.uint8]:
    """All rows at once, computed in strips on the pool."""
    step = max(1, -(-height // _STRIPS))
    jobs = [functools.partial(rows, y, min(height, y + step)) for y in range(0, height, step)]
    return np.concatenate(run_in_turn(jobs, pool))


def layers(
    pixels: Pixels, mask: NDArray[np.float32], opts: RemoveOptions, pool: Executor | None
) -> Layers:
    """RGB and alpha at the output size (cropped, scaled), refined as the options ask."""
    w, h = pixels.size
    region = _region(mask, (w, h), opts)
    out_size = fit_size(region[2] - region[0], region[3] - region[1], opts.size)
    rgb = _resize(pixels.rgb, out_size, region)
    upsampled = _upsample_mask(mask, (w, h), region, out_size)
    alpha_in = None if pixels.alpha is None else _resize(pixels.alpha, out_size, region)
    tracker = _BoxTracker()

    def alpha_rows(y0: int, y1: int) -> NDArray[np.uint8]:
        a = np.ascontiguousarray(upsampled[y0:y1])
        if alpha_in is not None:  # the photo's own transparency stays transparent
            own = np.ascontiguousarray(alpha_in[y0:y1])
            a = np.asarray(cv2.multiply(a, own, scale=1 / 255), dtype=np.uint8)
        tracker.add(y0, a)
        return a

    needs_whole = opts.refine or (opts.foreground and opts.channels == "rgba") or opts.crop
    if not needs_whole:
        return Layers(rgb, out_size[0], out_size[1], alpha_rows, tracker, pixels.icc)
    alpha = np.ascontiguousarray(upsampled)
    if opts.refine or (opts.foreground and opts.channels == "rgba"):
        rgb, alpha = _refined(rgb, alpha, opts, pool)
    if alpha_in is not None:
        own = np.ascontiguousarray(alpha_in)
        alpha = np.asarray(cv2.multiply(alpha, own, scale=1 / 255), dtype=np.uint8)
    if opts.crop:
        rgb, alpha = _tighten(rgb, alpha, opts)
    whole = alpha
    tracker = _BoxTracker()

    def slice_rows(y0: int, y1: int) -> NDArray[np.uint8]:
        part = whole[y0:y1]
        tracker.add(y0, part)
        return part

    return Layers(rgb, whole.shape[1], whole.shape[0], slice_rows, tracker, pixels.icc)


def _refined(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], opts: RemoveOptions, pool: Executor | None
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Refined alpha and foreground colour. Above ``REFINE_PIXELS`` the work is done on a
    reduced copy and brought back: the model's mask has 320x320 pixels of information, so a
    24 MP refinement adds seconds and gigabytes, not detail. The photo's own colour is kept
    wherever the refined alpha is sure."""
    h, w = alpha.shape
    foreground = opts.foreground and opts.channels == "rgba"
    scale = min(1.0, (REFINE_PIXELS / (w * h)) ** 0.5)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = _own(rgb)  # (an RGBA photo's colour comes as a view into its four-byte pixels)
    work_rgb = (
        rgb
        if scale == 1.0
        else np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    )
    work = (
        alpha
        if scale == 1.0
        else np.asarray(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    )
    soft = work.astype(np.float32) * np.float32(1 / 255)
    if opts.refine:
        matte = matting.matte_alpha(work_rgb, soft)
        if opts.pipeline == "best":  # its ensemble has decided which objects are the subject
            matte = matting.anchor(matte, soft)
        soft = np.clip(matte, 0.0, 1.0)
    colour = refine.estimate_foreground(work_rgb, soft, pool) if foreground else work_rgb
    if scale == 1.0:
        new_alpha = (soft * 255 + 0.5).astype(np.uint8) if opts.refine else alpha
        return (colour if foreground else rgb), new_alpha
    if opts.refine:
        soft8 = (soft * 255 + 0.5).astype(np.uint8)
        alpha = np.asarray(
            cv2.resize(soft8, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
        )
    if foreground:
        # the estimate brought back to full size, and the photo's own colour written over it
        # where the alpha is sure (not a copy of the photo with the estimate written in)
        sure = ((alpha <= 2) | (alpha >= 253)).view(np.uint8)
        whole = np.asarray(
            cv2.resize(colour, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
        )
        cv2.copyTo(rgb, sure, whole)
        rgb = whole
    return rgb, alpha


def _four_channels(rgb: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """The HxWx4 pixels that ``rgb`` is the colour of (a view into an RGBA photo), or None."""
    if rgb.ndim != 3 or rgb.strides[1:] != (4, 1) or not rgb.flags.aligned:
        return None
    h, w = rgb.shape[:2]
    return np.lib.stride_tricks.as_strided(rgb, (h, w, 4), (rgb.strides[0], 4, 1), writeable=False)


def _own(a: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``a`` as an array of its own (contiguous). The colour of an RGBA photo is a view into
    its four-byte pixels: OpenCV drops the fourth byte in one pass, many times faster than
    numpy's strided copy."""
    four = _four_channels(a)
    if four is None:
        return np.ascontiguousarray(a)
    return np.asarray(cv2.cvtColor(four, cv2.COLOR_RGBA2RGB), dtype=np.uint8)


def _tighten(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], opts: RemoveOptions
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Crop exactly to the subject's pixels plus the margin, within the image."""
    tracker = _BoxTracker()
    tracker.add(0, alpha)
    b = tracker.box()
    if b.width == 0:
        return rgb, alpha
    h, w = alpha.shape
    mx, my = opts.crop_margin.pixels(b.width), opts.crop_margin.pixels(b.height)
    x0, y0 = max(0, b.left - mx), max(0, b.top - my)
    x1, y1 = min(w, b.left + b.width + mx), min(h, b.top + b.height + my)
    return rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]


def _transparent_rows(rgb: NDArray[np.uint8], a: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """RGBA rows of a cut-out; fully transparent pixels get colour 0 (nothing hidden, smaller).

    Only the rectangle around the pixels that are not fully transparent is composed; the rest
    is left zero (a typical cut-out is transparent over a third to a half of its area)."""
    h, w = a.shape
    out = np.zeros((h, w, 4), dtype=np.uint8)
    extent = _extent(a, 1)
    if extent is None:
        return out
    y0, y1, x0, x1 = extent
    box, colour, alpha = out[y0:y1, x0:x1], rgb[y0:y1, x0:x1], a[y0:y1, x0:x1]
    # the colour of an RGBA photo is copied four bytes a pixel, its alpha written after
    pixels = _four_channels(colour)
    if pixels is None:
        pixels = np.asarray(cv2.cvtColor(colour, cv2.COLOR_RGB2RGBA))
    cv2.copyTo(pixels, (alpha != 0).view(np.uint8), box)  # into ``out``, visible pixels only
    box[:, :, 3] = alpha
    return out


def _over_rows(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], bg: tuple[int, int, int, int], opaque: bool
) -> NDArray[np.uint8]:
    """Rows of the cut-out over a solid colour (whose own alpha may be below 255)."""
    a = alpha.astype(np.float32)[..., None] * np.float32(1 / 255)
    bga = np.float32(1.0 if opaque else bg[3] / 255)
    colour = np.asarray(bg[:3], dtype=np.float32)
    out_a = a + bga * (1 - a)
    premul = rgb.astype(np.float32) * a + colour * (bga * (1 - a))
    rgb_out = premul / np.maximum(out_a, np.float32(1e-6))
    rgb8 = np.clip(rgb_out + 0.5, 0, 255).astype(np.uint8)
    if bga >= 1:
        return rgb8
    return np.dstack((rgb8, np.clip(out_a[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)))


def render(lay: Layers, opts: RemoveOptions, pool: Executor | None) -> tuple[bytes, str]:
    """Compose and encode (PNG strip by strip on the pool): the bytes and the media type."""
    fmt = opts.format
    rgb, w, h = lay.rgb, lay.width, lay.height
    bg = opts.bg_color
    if bg is None and fmt == "jpg":
        bg = (255, 255, 255, 255)
    rows: AlphaRows
    if opts.channels == "alpha":
        channels, rows = 1, lay.alpha_rows
    elif bg is None:
        channels = 4

        def rows(y0: int, y1: int) -> NDArray[np.uint8]:
            return _transparent_rows(rgb[y0:y1], lay.alpha_rows(y0, y1))
    else:
        opaque = fmt == "jpg" or bg[3] == 255
        channels, colour = (3 if opaque else 4), bg

        def rows(y0: int, y1: int) -> NDArray[np.uint8]:
            return _over_rows(rgb[y0:y1], lay.alpha_rows(y0, y1), colour, fmt == "jpg")

    icc = lay.icc if channels >= 3 else None  # a mask is grey: an RGB profile does not fit
    if fmt == "png":
        return encode_png_rows(w, h, channels, rows, executor=pool, icc=icc), MEDIA_TYPES[fmt]
    return encode(_gather(rows, h, pool), fmt, opts.quality, icc), MEDIA_TYPES[fmt]
