"""A fast PNG writer: numpy filtering and ISA-L deflate, strip by strip.

Written here because no library fits: Pillow's and OpenCV's PNG writers use zlib's slow levels
and adaptive filtering, on one thread (on a 24 MP cut-out, many times slower than this writer;
``python bench/bench.py --only rss`` times both tools). This writer uses the "Up" filter (one
vectorised subtraction) and
compresses horizontal strips, in parallel, as raw deflate segments ended by a sync flush,
joined into one valid zlib stream (as pigz does), with the Adler-32 combined from the strips'.
The pixels themselves can be produced strip by strip (``encode_png_rows``), so composing a
cut-out never makes a full-size copy.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray

from clearbg.engine.turns import run_in_turn

__all__ = ["Rows", "encode_png", "encode_png_rows"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_MOD_ADLER = 65521
_STRIP_BYTES = 1 << 20  # aim for about this many raw bytes per strip (in the CPU's caches)
_STRIPS = 24  # and at most this many strips (24 MP RGBA: 4 MB each, fewer calls)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return b"".join(_chunk_parts(kind, [payload]))


def _chunk_parts(kind: bytes, payload: list[bytes]) -> list[bytes]:
    """A chunk whose payload is the concatenation of ``payload``, as pieces to join (so a
    large IDAT is copied once, into the file, not once a step)."""
    crc = isal_zlib.crc32(kind)
    for piece in payload:
        crc = isal_zlib.crc32(piece, crc)
    length = sum(len(piece) for piece in payload)
    return [struct.pack(">I", length), kind, *payload, struct.pack(">I", crc)]


def _adler_combine(a1: int, a2: int, len2: int) -> int:
    """adler32(A + B) from adler32(A), adler32(B) and len(B), as zlib's adler32_combine."""
    rem = len2 % _MOD_ADLER
    s1a, s2a = a1 & 0xFFFF, (a1 >> 16) & 0xFFFF
    s1b, s2b = a2 & 0xFFFF, (a2 >> 16) & 0xFFFF
    s1 = (s1a + s1b - 1) % _MOD_ADLER
    s2 = (rem * s1a + s2a + s2b - rem) % _MOD_ADLER
    return (s2 << 16) | s1


def _filter_rows(pixels: NDArray[np.uint8]) -> memoryview:
    """Rows with the Up filter (type 2); the strip's first row unfiltered (type 0), so a strip
    never depends on the one above it and strips can be made and compressed independently."""
    h = pixels.shape[0]
    flat = pixels.reshape(h, -1)
    out = np.empty((h, flat.shape[1] + 1), dtype=np.uint8)
    out[0, 0] = 0
    out[0, 1:] = flat[0]
    out[1:, 0] = 2
    np.subtract(flat[1:], flat[:-1], out=out[1:, 1:])
    return out.data.cast("B")


Rows = Callable[[int, int], NDArray[np.uint8]]
"""``rows(y0, y1)`` -> the pixels of rows y0..y1 as (y1 - y0) x W x channels uint8."""


def _compress_strip(
    rows: Rows, y0: int, y1: int, last: bool, level: int
) -> tuple[list[bytes], int, int]:
    """A strip's deflate segment (as pieces), the Adler-32 and the length of its raw bytes."""
    raw = _filter_rows(rows(y0, y1))
    comp = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    body = [comp.compress(raw), comp.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)]
    return body, isal_zlib.adler32(raw), raw.nbytes


def encode_png_rows(
    width: int,
    height: int,
    channels: int,
    rows: Rows,
    *,
    executor: Executor | None = None,
    level: int = 1,
    icc: bytes | None = None,
) -> bytes:
    """Encode a PNG whose pixels are produced strip by strip by ``rows``; ``icc``: an RGB colour
    profile to embed (an iCCP chunk; ignored for grey images, which it would not describe).

    With an executor the strips are produced, filtered and compressed in parallel (ISA-L and
    numpy release the GIL); a strip is about 1 MB, so the work stays in the CPU's caches.
    """
    if channels not in _COLOR_TYPES:
        raise ValueError(f"cannot write a PNG with {channels} channels")
    # strips of about 1 MB, taken in turn by this thread and a pool thread (``run_in_turn``).
    # Their number does not depend on the executor, so neither do the rows and filters the
    # file holds. (ISA-L's compressed bytes for the same rows may differ between runs; each is
    # a valid stream of the same rows.)
    size = height * width * channels
    count = min(-(-size // _STRIP_BYTES), _STRIPS, height)
    step = -(-height // count)
    starts = list(range(0, height, step))
    parts = run_in_turn(
        [
            functools.partial(
                _compress_strip, rows, y, min(y + step, height), y == starts[-1], level
            )
            for y in starts
        ],
        executor,
    )
    adler = 1
    for _, part_adler, length in parts:
        adler = _adler_combine(adler, part_adler, length)
    stream = [b"\x78\x01", *(piece for p in parts for piece in p[0]), struct.pack(">I", adler)]
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    profile = [] if icc is None or channels < 3 else [_chunk(b"iCCP", _iccp(icc))]
    return b"".join(
        [
            _SIGNATURE,
            _chunk(b"IHDR", header),
            *profile,
            *_chunk_parts(b"IDAT", stream),
            _chunk(b"IEND", b""),
        ]
    )


def _iccp(icc: bytes) -> bytes:
    """An iCCP payload: a profile name, NUL, compression method 0 (zlib), the profile."""
    return b"ICC profile\0\0" + zlib.compress(icc)


def encode_png(
    pixels: NDArray[np.uint8],
    executor: Executor | None = None,
    level: int = 1,
    icc: bytes | None = None,
) -> bytes:
    """Encode an HxW, HxWx1..4 uint8 array as an 8-bit PNG (grey, grey+alpha, RGB or RGBA)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8:
        raise ValueError(f"cannot write a PNG from {pixels.dtype}")
    h, w, channels = pixels.shape
    return encode_png_rows(
        w, h, channels, lambda y0, y1: pixels[y0:y1], executor=executor, level=level, icc=icc
    )
