"""Decoding photos as phones and cameras write them, and encoding cut-outs.

``probe`` reads only the header: format, size after EXIF orientation, and the pixel limit, so a
decompression bomb is refused before any pixel is decoded. ``decode`` returns the pixels as
numpy arrays (RGB plus an optional alpha) with orientation applied and every mode (CMYK, 16-bit,
palette, grey, grey+alpha, RGBA) brought to 8-bit RGB. ``decode_small`` gives a quick reduced
image for the model (JPEG's DCT scaling), so inference can start while the full decode runs.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from clearbg.errors import (
    CorruptImageError,
    EmptyImageError,
    InvalidOptionError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedFormatError,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "Pixels",
    "Probe",
    "decode",
    "decode_small",
    "encode",
    "probe",
]

# Pillow format names we accept (MPO is what many phones call their JPEGs).
ACCEPTED_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "HEIF", "AVIF"}
)
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


# EXIF orientation -> how OpenCV turns the stored pixels as a viewer shows them
_ORIENT: dict[int, Callable[[NDArray[np.uint8]], Any]] = {
    2: lambda a: cv2.flip(a, 1),  # mirrored left-right
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),  # mirrored upside down
    5: cv2.transpose,
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.flip(cv2.transpose(a), -1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


@functools.cache
def _register_plugins() -> None:
    """Teach Pillow HEIC/HEIF (once per process; AVIF is built into Pillow)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class Probe:
    """What the header says: format, stored size, EXIF orientation, size as the viewer sees it."""

    data: bytes
    format: str
    mode: str
    stored_size: tuple[int, int]
    orientation: int
    transparency: bool = False  # a palette or colour-key transparency (PNG tRNS, GIF)
    icc: bytes | None = None  # the photo's RGB colour profile (Display P3, Adobe RGB, ...)
    progressive: bool = False  # a progressive JPEG

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.stored_size
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)


@dataclass(frozen=True)
class Pixels:
    """Decoded pixels: HxWx3 (RGB) or HxWx4 (RGBA).

    ``rgb`` and ``alpha`` are views into ``data``: a 24 MP RGBA photo is not copied to split it.
    An RGBA photo whose every pixel is opaque keeps its four channels with ``opaque`` set (no
    alpha): dropping the fourth channel would copy every pixel, and nothing needs it dropped.
    """

    data: NDArray[np.uint8]
    icc: bytes | None = None  # the photo's RGB colour profile, carried to the cut-out
    opaque: bool = False  # RGBA data whose alpha is 255 everywhere: no alpha

    @property
    def rgb(self) -> NDArray[np.uint8]:
        return self.data[:, :, :3] if self.data.shape[2] == 4 else self.data

    @property
    def alpha(self) -> NDArray[np.uint8] | None:
        return self.data[:, :, 3] if self.data.shape[2] == 4 and not self.opaque else None

    @property
    def size(self) -> tuple[int, int]:
        return (self.data.shape[1], self.data.shape[0])


def _open(data: bytes) -> Image.Image:
    if not data:
        raise EmptyImageError("the image is empty (0 bytes)")
    _register_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(f"the image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError("the data is not an image in any format we know") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        if _cut_short(data) or "truncated" in str(exc).lower():
            raise TruncatedImageError(f"the image header is truncated: {exc}") from exc
        raise CorruptImageError(f"cannot read the image header: {exc}") from exc


def _cut_short(data: bytes) -> bool:
    """Whether the file visibly ends early (asked only after the decoder failed)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        (riff_size,) = struct.unpack("<I", data[4:8])
        return len(data) < 8 + int(riff_size)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-12:]
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\0").endswith(b"\xff\xd9")
    return False


def probe(data: bytes, max_megapixels: float) -> Probe:
    """Read the header only; refuse unknown formats and images above the pixel limit."""
    im = _open(data)
    fmt = im.format or "unknown"
    if fmt not in ACCEPTED_FORMATS:
        raise UnsupportedFormatError(
            f"{fmt} images are not accepted; send JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF"
        )
    w, h = im.size
    if w <= 0 or h <= 0:
        raise CorruptImageError("the image has no pixels")
    if w * h > max_megapixels * 1_000_000:
        raise TooManyPixelsError(
            f"the image is {w}x{h} = {w * h / 1e6:.1f} MP; the limit is {max_megapixels:g} MP"
        )
    orientation = _orientation(im)
    if orientation not in range(1, 9) or fmt == "TIFF":
        # Pillow's TIFF reader reports the oriented size and rotates while it loads
        orientation = 1
    keyed = "transparency" in im.info
    progressive = bool(im.info.get("progressive") or im.info.get("progression"))
    return Probe(data, fmt, im.mode, (w, h), orientation, keyed, _rgb_icc(im), progressive)


def _rgb_icc(im: Image.Image) -> bytes | None:
    """The embedded ICC profile if it describes RGB colour (bytes 16-19 of its header say
    which). A phone's Display P3 photo shown without its profile looks washed out; a CMYK or
    grey profile does not fit the RGB pixels we decode, so it is dropped."""
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and len(icc) >= 128 and icc[16:20] == b"RGB ":
        return icc
    return None


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag, read without decoding pixels (1 when absent or unreadable)."""
    try:
        if im.format == "PNG":
            # Pillow's PNG getexif() decodes the whole image to look for a late eXIf chunk;
            # only an eXIf chunk before the pixels (what cameras write) is honoured here
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = im.getexif()
        return int(exif.get(0x0112, 1))
    except Exception:  # a broken EXIF block must not refuse a readable photo
        return 1


def _orient(a: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """``a`` turned as its EXIF orientation says, as an array of its own. OpenCV writes the
    turned rows in one pass each, several times faster than a copy of numpy's ``rot90`` view."""
    turn = _ORIENT.get(orientation)
    if turn is None:
        return a
    return np.asarray(turn(a), dtype=np.uint8)  # (one channel comes back HxW: _split takes it)


def _load(im: Image.Image, data: bytes) -> None:
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(str(exc)) from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        text = str(exc).lower()
        if _cut_short(data) or "truncated" in text or "unexpected end" in text:
            raise TruncatedImageError(f"the image data is truncated: {exc}") from exc
        raise CorruptImageError(f"cannot decode the image: {exc}") from exc


def _to_8bit(a: NDArray[np.generic]) -> NDArray[np.uint8]:
    if a.dtype == np.uint8:
        return a  # type: ignore[return-value]
    if a.dtype == np.uint16:  # 16-bit samples: scaled, not clipped
        return (np.asarray(a, dtype=np.uint16) // np.uint16(257)).astype(np.uint8)
    if a.dtype in (np.int32, np.uint32, np.int64):
        # Pillow keeps 16-bit grey in 'I' mode
        return (np.clip(a.astype(np.int64), 0, 65535) // 257).astype(np.uint8)
    if a.dtype == np.bool_:
        return np.where(a, np.uint8(255), np.uint8(0)).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.asarray(a, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(np.clip(a, 0, 255), dtype=np.uint8)


def _opaque(a: NDArray[np.uint8]) -> bool:
    """Whether every pixel's alpha (the last of 2 or 4 channels) is 255."""
    alpha = a[:, :, -1]
    # a sparse look first: a photo with real transparency shows it without a pass over all
    if int(alpha[::8, ::8].min()) < 255:
        return False
    if a.flags.c_contiguous:
        # each pixel as one little-endian word, alpha its top byte: the smallest word tells
        # (three times faster than the strided alpha plane's minimum)
        words = a.reshape(-1).view("<u4" if a.shape[2] == 4 else "<u2")
        return int(words.min()) >= (0xFF000000 if a.shape[2] == 4 else 0xFF00)
    return int(alpha.min()) == 255


def _split(a: NDArray[np.uint8], icc: bytes | None = None) -> Pixels:
    """HxW, HxWx2, HxWx3 or HxWx4 -> RGB + alpha (no alpha when fully opaque: dropped, or for
    RGBA kept and marked ``opaque``), with the photo's colour profile ``icc``."""
    if a.ndim == 2:
        a = a[:, :, None]
    channels = a.shape[2]
    if channels in (2, 4) and _opaque(a):
        if channels == 4:  # kept as it is, its alpha ignored
            return Pixels(np.ascontiguousarray(a), icc, opaque=True)
        a = a[:, :, :1]  # grey alone
        channels -= 1
    if channels < 3:  # grey (+ alpha): repeat the grey value into R, G and B
        grey = np.repeat(a[:, :, :1], 3, axis=2)
        a = np.dstack((grey, a[:, :, 1])) if channels == 2 else grey
    return Pixels(np.ascontiguousarray(a), icc)


def _pil_pixels(im: Image.Image) -> NDArray[np.uint8]:
    mode = im.mode
    if mode in ("RGB", "L") and "transparency" in im.info:  # colour-key transparency
        return np.asarray(im.convert("RGBA" if mode == "RGB" else "LA"))
    if mode in ("RGB", "RGBA", "L", "LA"):
        return np.asarray(im)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_8bit(np.asarray(im))
    if mode == "1":
        return _to_8bit(np.asarray(im))
    if mode in ("P", "PA"):
        has_alpha = "transparency" in im.info or mode == "PA"
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if mode == "RGBa":
        return np.asarray(im.convert("RGBA"))
    if mode == "La":
        return np.asarray(im.convert("LA"))
    # CMYK, YCbCr, LAB, HSV, RGBX, 16-bit RGB variants: Pillow's own conversion
    return np.asarray(im.convert("RGBA" if "A" in mode else "RGB"))


_SPNG_MODES = frozenset({"RGB", "RGBA", "L", "LA", "I;16", "I", "P"})


def _check_png_crcs(data: bytes) -> None:
    """Raise ``CorruptImageError`` if a chunk's CRC does not match its bytes (pyspng has
    libspng ignore CRCs, so damage in transit would otherwise decode to wrong pixels)."""
    view, pos = memoryview(data), 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            return  # cut short: the decoder names it
        (crc,) = struct.unpack_from(">I", data, end)
        if isal_zlib.crc32(view[pos + 4 : end]) != crc:
            kind = data[pos + 4 : pos + 8].decode("latin-1")
            raise CorruptImageError(f"the PNG's {kind} chunk fails its CRC check")
        pos = end + 4


def _decode_png(data: bytes) -> NDArray[np.uint8] | None:
    """An 8 or 16-bit PNG's pixels, decoded by libspng through pyspng straight into numpy, or
    None when it reports a problem (Pillow then decodes it, or names the error). The fastest of
    the public decoders on photo PNGs (``python bench/png_decoders.py``)."""
    import pyspng

    _check_png_crcs(data)
    try:
        return _to_8bit(pyspng.load(data))
    except (RuntimeError, ValueError):
        return None


def _decode_jpeg(
    data: bytes, mode: str, least: tuple[int, int] = (0, 0)
) -> NDArray[np.uint8] | None:
    """A YCbCr or grey JPEG's pixels, decoded by libjpeg-turbo through simplejpeg straight into
    numpy (HxWx3 for ``mode`` "RGB", HxWx1 for "L"), or None when it reports any problem
    (``strict``: a cut short file too); Pillow then decodes it, or names the error. ``least``:
    the smallest (width, height) wanted, reached by DCT scaling (the smallest of the sizes
    M/8 of the photo that is at least that big).

    The very pixels Pillow gives, faster: Pillow keeps RGB as four bytes a pixel and
    ``np.asarray`` copies them out again. It lets go of the GIL throughout."""
    import simplejpeg

    try:
        return np.asarray(
            simplejpeg.decode_jpeg(
                data,
                colorspace="RGB" if mode == "RGB" else "GRAY",
                min_width=least[0],
                min_height=least[1],
            ),
            dtype=np.uint8,
        )
    except ValueError:
        return None


def _decode_heif(data: bytes) -> NDArray[np.uint8] | None:
    """An RGB or RGBA HEIC/HEIF photo's primary image, decoded by libheif through pillow_heif
    straight into numpy (8-bit, as its Pillow plugin gives it), or None on any problem: Pillow
    then decodes it, or names the error. The same pixels, without Pillow's four bytes a pixel
    copied out again."""
    import pillow_heif

    try:
        a = np.asarray(pillow_heif.open_heif(data, convert_hdr_to_8bit=True))
    except (ValueError, RuntimeError, OSError, EOFError):
        return None
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        return None
    return a


def decode(p: Probe) -> Pixels:
    """All the pixels, oriented, as 8-bit RGB plus alpha."""
    a: NDArray[np.uint8] | None = None
    # libspng ignores tRNS (palette or colour-key transparency): Pillow decodes those
    if p.format == "PNG" and not p.transparency and p.mode in _SPNG_MODES:
        a = _decode_png(p.data)
    elif p.format in ("JPEG", "MPO") and p.mode in ("RGB", "L"):  # CMYK: Pillow's conversion
        a = _decode_jpeg(p.data, p.mode)
    elif p.format == "HEIF" and p.mode in ("RGB", "RGBA"):
        a = _decode_heif(p.data)
    if a is None:
        im = _open(p.data)
        if p.format in ("GIF", "WEBP", "TIFF", "MPO"):
            im.seek(0)  # first frame
        _load(im, p.data)
        a = _pil_pixels(im)
    return _split(_orient(a, p.orientation), p.icc)


def decode_small(p: Probe, min_size: tuple[int, int]) -> NDArray[np.uint8] | None:
    """A quickly decoded RGB image (HxWx3) at least ``min_size``, oriented like the full image,
    or None.

    Only JPEG has a cheap reduced decode: DCT scaling by the largest of 8, 4 and 2 that keeps
    both sides at least the model's (the factor Pillow's ``draft`` picks, so the very pixels it
    gave), by libjpeg-turbo through ``_decode_jpeg``, which a grey JPEG also gives as RGB. Not
    for a progressive JPEG: its entropy decoding, which DCT scaling does not shorten, is most of
    its cost, so the full decode would run a second time beside inference for nothing. Any
    problem gives None (the full decode then names it).
    """
    if p.format not in ("JPEG", "MPO") or p.mode not in ("RGB", "L") or p.progressive:
        return None
    w, h = p.stored_size
    want = max(min_size)
    most = min(w // want, h // want)
    if most < 2:
        return None
    scale = next(k for k in (8, 4, 2) if k <= most)
    a = _decode_jpeg(p.data, "RGB", (-(-w // scale), -(-h // scale)))
    return None if a is None else _orient(a, p.orientation)


def encode(
    pixels: NDArray[np.uint8], fmt: str, quality: int = 90, icc: bytes | None = None
) -> bytes:
    """HxW (grey), HxWx3 or HxWx4 uint8 -> PNG, JPEG or WebP bytes, with the colour profile
    ``icc`` embedded (colour images only)."""
    if pixels.ndim == 2:
        icc = None
    side = {"jpg": 65535, "webp": 16383}.get(fmt)
    if side is not None and max(pixels.shape[:2]) > side:
        h, w = pixels.shape[:2]
        raise InvalidOptionError(
            "format",
            f"{fmt} holds at most {side} px a side and this cut-out is {w}x{h}: "
            "choose png or a smaller size",
        )
    if fmt == "png":
        from clearbg.engine.png import encode_png

        return encode_png(pixels, icc=icc)
    im = Image.fromarray(pixels)
    buf = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if fmt == "jpg":
        if im.mode == "RGBA":
            im = im.convert("RGB")
        im.save(buf, "JPEG", quality=quality, optimize=False, **extra)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=quality, method=2, **extra)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()
