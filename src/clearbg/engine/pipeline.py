"""``Engine.remove(image, options) -> Cutout``: decode -> infer -> refine -> compose -> encode.

The full decode of a large JPEG runs on a worker thread while the model already looks at a
reduced decode of the same file; everything after inference works at the output size only.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine import refine
from clearbg.engine.imageio import MEDIA_TYPES, Pixels, Probe, decode, decode_small, encode, probe
from clearbg.engine.models import ModelStore
from clearbg.engine.options import RemoveOptions, fit_size
from clearbg.engine.session import ModelSession, SessionCache
from clearbg.settings import EngineSettings

__all__ = ["Box", "Cutout", "Engine", "MaskResult"]

_RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class Cutout:
    data: bytes
    media_type: str
    width: int
    height: int
    foreground: Box
    model: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[self.media_type]


@dataclass(frozen=True)
class Decoded:
    """A photo ready for the model: its pixels and the model-sized RGB input."""

    pixels: Pixels
    model_input: NDArray[np.uint8]
    model: str
    seconds: float


@dataclass(frozen=True)
class MaskResult:
    """The model's view of one photo: decoded pixels and a 0..1 mask at the model's size."""

    pixels: Pixels
    mask: NDArray[np.float32]
    model: str
    session_seconds: float
    decode_seconds: float


def _model_input(im: Image.Image, size: tuple[int, int], resample: str) -> NDArray[np.uint8]:
    gap = 3.0 if im.width >= 3 * size[0] and im.height >= 3 * size[1] else None
    return np.asarray(im.resize(size, _RESAMPLE[resample], reducing_gap=gap))


class Engine:
    """Turns photos into cut-outs. Thread-safe; sessions are loaded once and cached.

    ``remove`` does everything for one photo. A caller that streams many photos (the CLI on a
    folder) runs the three stages on different threads: ``decode`` -> ``predict`` -> ``finish``.
    """

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.store = ModelStore.from_settings(self.settings)
        self._sessions = SessionCache(self.settings.loaded_models)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clearbg-decode")

    # -- models -------------------------------------------------------------------------------
    def session(self, name: str | None = None) -> ModelSession:
        """The loaded session of a model (the default one if no name), loading it if needed."""
        model = name or self.settings.default_model
        spec = self.store.spec(model)

        def load() -> ModelSession:
            return ModelSession.load(spec, self.store.ensure(model), self.settings.threads)

        return self._sessions.get(model, load)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- stages -------------------------------------------------------------------------------
    def probe(self, image: bytes) -> Probe:
        return probe(image, self.settings.max_megapixels)

    def decode(self, image: bytes, model: str | None = None) -> Decoded:
        """Stage 1: probe, decode and build the model's input (no inference)."""
        t0 = time.perf_counter()
        name = model or self.settings.default_model
        fam = self.store.spec(name).preprocessing
        pixels = decode(self.probe(image))
        rgb = _model_input(Image.fromarray(pixels.rgb), fam.input_size, fam.resample)
        return Decoded(pixels, rgb, name, time.perf_counter() - t0)

    def predict(self, decoded: Decoded) -> MaskResult:
        """Stage 2: run the model."""
        mask, run_s = self.session(decoded.model).predict(decoded.model_input)
        return MaskResult(decoded.pixels, mask, decoded.model, run_s, decoded.seconds)

    def finish(self, result: MaskResult, options: RemoveOptions | None = None) -> Cutout:
        """Stage 3: refine, compose and encode at the output size."""
        opts = options or RemoveOptions()
        t1 = time.perf_counter()
        rgb, alpha, box = _compose_inputs(result, opts)
        t2 = time.perf_counter()
        data, media_type = _render(rgb, alpha, opts)
        t3 = time.perf_counter()
        timings = {
            "decode": result.decode_seconds,
            "inference": result.session_seconds,
            "refine": t2 - t1,
            "encode": t3 - t2,
        }
        h, w = alpha.shape
        return Cutout(data, media_type, w, h, box, result.model, timings)

    def mask(self, image: bytes, model: str | None = None) -> MaskResult:
        """Decode and run the model, overlapping the two for a large JPEG."""
        t0 = time.perf_counter()
        name = model or self.settings.default_model
        p = self.probe(image)
        session = self.session(name)
        fam = session.family
        small = decode_small(p, fam.input_size)
        if small is None:
            return self.predict(self.decode(image, name))
        # inference on the reduced decode overlaps the full decode on another thread
        full = self._pool.submit(decode, p)
        mask, run_s = session.predict(_model_input(small, fam.input_size, fam.resample))
        pixels = full.result()
        return MaskResult(pixels, mask, name, run_s, time.perf_counter() - t0 - run_s)

    def remove(self, image: bytes, options: RemoveOptions | None = None) -> Cutout:
        """Cut the subject out of ``image`` (encoded bytes) as ``options`` ask."""
        t0 = time.perf_counter()
        opts = options or RemoveOptions()
        cutout = self.finish(self.mask(image, opts.model), opts)
        cutout.timings["total"] = time.perf_counter() - t0
        return cutout


def _region(
    mask: NDArray[np.float32], size: tuple[int, int], opts: RemoveOptions
) -> tuple[int, int, int, int]:
    """The part of the photo to keep (left, top, right, bottom): all of it, or the subject."""
    w, h = size
    if not opts.crop:
        return 0, 0, w, h
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return 0, 0, w, h
    mh, mw = mask.shape
    sx, sy = w / mw, h / mh
    # one mask pixel of slack each side: the exact edge is found again at full resolution
    left, right = max(0, int((xs.min() - 1) * sx)), min(w, int(np.ceil((xs.max() + 2) * sx)))
    top, bottom = max(0, int((ys.min() - 1) * sy)), min(h, int(np.ceil((ys.max() + 2) * sy)))
    mx = opts.crop_margin.pixels(right - left)
    my = opts.crop_margin.pixels(bottom - top)
    return max(0, left - mx), max(0, top - my), min(w, right + mx), min(h, bottom + my)


def _resize_u8(
    a: NDArray[np.uint8], size: tuple[int, int], box: tuple[float, float, float, float]
) -> NDArray[np.uint8]:
    im = Image.fromarray(a)
    full = (0, 0, im.width, im.height)
    if size == (im.width, im.height) and tuple(box) == full:
        return a
    if size == (int(box[2] - box[0]), int(box[3] - box[1])) and all(
        float(v).is_integer() for v in box
    ):
        return np.asarray(im.crop(box))
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0))


def _compose_inputs(
    result: MaskResult, opts: RemoveOptions
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], Box]:
    """RGB and alpha at the output size (cropped, scaled), with refinement as asked."""
    pixels = result.pixels
    w, h = pixels.size
    left, top, right, bottom = _region(result.mask, (w, h), opts)
    out_size = fit_size(right - left, bottom - top, opts.size)
    box = (float(left), float(top), float(right), float(bottom))
    rgb = _resize_u8(pixels.rgb, out_size, box)
    # the model's mask as 8-bit, upsampled with Lanczos (what rembg does, so raw output matches)
    mh, mw = result.mask.shape
    mbox = (left * mw / w, top * mh / h, right * mw / w, bottom * mh / h)
    mask8 = Image.fromarray((result.mask * 255).astype(np.uint8))
    coarse = np.asarray(mask8.resize(out_size, Image.Resampling.LANCZOS, box=mbox))
    if opts.refine:
        soft = refine.refine_alpha(rgb, coarse.astype(np.float32) * np.float32(1 / 255))
    else:
        soft = None
    if opts.foreground and opts.channels == "rgba":
        rgb = refine.estimate_foreground(
            rgb, soft if soft is not None else coarse * np.float32(1 / 255)
        )
    alpha = coarse if soft is None else (np.clip(soft, 0, 1) * 255 + 0.5).astype(np.uint8)
    if pixels.alpha is not None:
        alpha_in = _resize_u8(pixels.alpha, out_size, box)
        alpha = ((alpha.astype(np.uint16) * alpha_in + 127) // 255).astype(np.uint8)
    if opts.crop:
        rgb, alpha, _ = _tighten(rgb, alpha, opts)
    return rgb, alpha, _bbox(alpha)


def _tighten(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], opts: RemoveOptions
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], Box]:
    """Crop exactly to the subject's pixels plus the margin, within the image."""
    b = _bbox(alpha)
    if b.width == 0:
        return rgb, alpha, b
    h, w = alpha.shape
    mx, my = opts.crop_margin.pixels(b.width), opts.crop_margin.pixels(b.height)
    x0, y0 = max(0, b.left - mx), max(0, b.top - my)
    x1, y1 = min(w, b.left + b.width + mx), min(h, b.top + b.height + my)
    return rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1], b


def _bbox(alpha: NDArray[np.uint8]) -> Box:
    rows = np.flatnonzero(alpha.any(axis=1))
    if len(rows) == 0:
        return Box(0, 0, 0, 0)
    cols = np.flatnonzero(alpha[rows[0] : rows[-1] + 1].any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def _render(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8], opts: RemoveOptions
) -> tuple[bytes, str]:
    fmt = opts.format
    if opts.channels == "alpha":
        return encode(np.ascontiguousarray(alpha), fmt, opts.quality), MEDIA_TYPES[fmt]
    bg = opts.bg_color
    if bg is None and fmt == "jpg":
        bg = (255, 255, 255, 255)
    if bg is None:
        out = np.dstack((rgb, alpha))
        out[alpha == 0, :3] = 0  # hidden colour carries nothing and compresses better
    else:
        out = _over(rgb, alpha, bg, opaque_out=(fmt == "jpg"))
    return encode(out, fmt, opts.quality), MEDIA_TYPES[fmt]


def _over(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.uint8],
    bg: tuple[int, int, int, int],
    opaque_out: bool,
) -> NDArray[np.uint8]:
    """Composite the cut-out over a solid colour (whose own alpha may be below 255)."""
    a = alpha.astype(np.float32)[..., None] * np.float32(1 / 255)
    bga = np.float32(1.0 if opaque_out else bg[3] / 255)
    colour = np.asarray(bg[:3], dtype=np.float32)
    out_a = a + bga * (1 - a)
    premul = rgb.astype(np.float32) * a + colour * (bga * (1 - a))
    rgb_out = np.where(out_a > 0, premul / np.maximum(out_a, 1e-6), 0)
    rgb8 = np.clip(rgb_out + 0.5, 0, 255).astype(np.uint8)
    if opaque_out or bga >= 1:
        return rgb8
    return np.dstack((rgb8, np.clip(out_a[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)))
