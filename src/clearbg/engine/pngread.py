"""A fast PNG reader: ISA-L inflates the next band of rows while libspng unfilters this one.

Written here because no library does both halves fast. libspng (through pyspng) is the quickest
unfilterer we have, but it inflates with zlib, three quarters of a photo PNG's decode (1.5 MP:
20 of 27 ms), and pyspng holds the GIL, so nothing else runs meanwhile. ISA-L inflates 2.5x
faster and releases the GIL. So:

- the IDAT stream is inflated by ISA-L on the pool, one band of rows (about 2 MB) ahead, and
  laid out there as a small PNG of its own whose data are stored (uncompressed) deflate blocks
  (numpy's copies, which let go of the GIL), so libspng only unfilters;
- the band's first row is the row above it, with filter "None", so that its Up, Average and
  Paeth rows find what they need: the unfiltering thread writes it in once it has unfiltered it;
- libspng is called through ctypes, which releases the GIL, with the C API that pyspng's
  extension exports, and writes straight into the output array (no copy).

The photo's own checksums are still checked: each IDAT chunk's CRC (on the compressed bytes) and
the stream's Adler-32 (by ISA-L). Only 8-bit, non-interlaced grey, grey+alpha, RGB and RGBA
PNGs are read here; anything else, and any damage, gives None, and the caller decodes the usual
way, which reports the precise error.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import struct
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray

from clearbg.engine.png import _COLOR_TYPES, _SIGNATURE, _chunk

__all__ = ["read_png"]

# the writer's table read the other way: PNG colour type -> channels
_CHANNELS = {kind: channels for channels, kind in _COLOR_TYPES.items()}
_IEND = _chunk(b"IEND", b"")
_SPNG_VERSION = b"0.7."  # the API (and the constants here) of libspng 0.7
_SPNG_FMT_PNG = 256  # samples as the PNG stores them (8-bit here: no byte order to mind)
_SPNG_CTX_IGNORE_ADLER32 = 1  # our stored blocks carry no checksum: ISA-L checked the real one
_SPNG_CRC_USE = 2  # our own chunks carry none either: the photo's were checked on the way in
_BAND_BYTES = 2 << 20  # raw bytes per band: small enough to stay in cache, big enough per call
_PIECE = 1 << 16  # compressed bytes fed to the inflater at a time
_STORED_MAX = 65535  # bytes in one stored deflate block
_BLOCK = _STORED_MAX + 5  # a whole stored block: its header (type, LEN, NLEN), its bytes
_FULL_BLOCK = np.frombuffer(struct.pack("<BHH", 0, _STORED_MAX, 0), dtype=np.uint8)
_PLAIN_PAGES = 32 << 20  # output arrays this large are mapped without huge pages
_MADV_POPULATE_WRITE = 23  # Linux 5.14+: fault a range's pages in, writable, without a trap each
_PREFAULT_CHUNK = 8 << 20  # bytes faulted in per call, front to back, ahead of the rows


@functools.cache
def _libspng() -> Any:
    """libspng's C API from pyspng's extension module, or None when it does not export it or
    is not the libspng whose API is declared here (0.7.x)."""
    try:
        from pyspng import _pyspng_c

        lib = ctypes.CDLL(_pyspng_c.__file__)
        lib.spng_version_string.restype = ctypes.c_char_p
        if not lib.spng_version_string().startswith(_SPNG_VERSION):
            return None
        lib.spng_ctx_new.restype = ctypes.c_void_p
        lib.spng_ctx_new.argtypes = [ctypes.c_int]
        lib.spng_ctx_free.argtypes = [ctypes.c_void_p]
        lib.spng_set_crc_action.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.spng_set_png_buffer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.spng_decode_image.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
        ]
    except (ImportError, OSError, AttributeError):
        return None
    return lib


class _Header:
    """What the reader needs from the PNG's chunks, or None if it is not a PNG it reads."""

    def __init__(self, width: int, height: int, colour: int, idat: list[memoryview]) -> None:
        self.width, self.height, self.colour, self.idat = width, height, colour, idat
        self.channels = _CHANNELS[colour]
        self.row_bytes = width * self.channels + 1  # the filter byte, then the samples

    @classmethod
    def parse(cls, data: bytes) -> _Header | None:
        if data[:8] != _SIGNATURE:
            return None
        view = memoryview(data)
        fields: tuple[int, ...] | None = None
        idat: list[memoryview] = []
        pos = 8
        while pos + 12 <= len(data):
            (length,) = struct.unpack_from(">I", data, pos)
            kind, body = data[pos + 4 : pos + 8], pos + 8
            if body + length + 4 > len(data):
                return None
            (crc,) = struct.unpack_from(">I", data, body + length)
            if kind in (b"IHDR", b"IDAT") and isal_zlib.crc32(view[pos + 4 : body + length]) != crc:
                return None  # the CRC covers the chunk's type and data
            if kind == b"IHDR" and length == 13:
                fields = struct.unpack_from(">IIBBBBB", data, body)
            elif kind == b"IDAT":
                idat.append(view[body : body + length])
            elif kind == b"IEND":
                break
            pos = body + length + 4
        if fields is None or not idat:
            return None
        width, height, depth, colour, compression, filtering, interlace = fields
        if depth != 8 or colour not in _CHANNELS or compression or filtering or interlace:
            return None
        if width == 0 or height == 0:
            return None
        header = cls(width, height, colour, idat)
        # deflate expands at most 1032 times: rows a file this size cannot hold mean damage
        # (the caller's pixel limit, checked first, is what bounds the memory asked for)
        if height * header.row_bytes > 1032 * sum(len(c) for c in idat) + 1024:
            return None
        return header


class _Inflater:
    """The IDAT stream inflated on demand, a given number of bytes at a time.

    Each call inflates no more than it is asked for (``max_length``), so what is in flight
    stays about one band: a photo's transparent background inflates 64 KB into 24 MB."""

    def __init__(self, idat: list[memoryview]) -> None:
        self._d = isal_zlib.decompressobj()
        self._pieces: Iterator[memoryview] = (
            chunk[i : i + _PIECE] for chunk in idat for i in range(0, len(chunk), _PIECE)
        )
        self._pending: bytes | memoryview = b""  # compressed bytes not yet consumed

    def take(self, size: int) -> list[bytes]:
        """``size`` inflated bytes, as pieces (fewer bytes if the stream ends)."""
        out: list[bytes] = []
        have = 0
        drained = False  # all input given; what the inflater still holds comes out below
        while have < size and not self._d.eof:
            if not self._pending:
                piece = next(self._pieces, None)
                drained = piece is None
                self._pending = b"" if piece is None else piece
            chunk = self._d.decompress(self._pending, size - have)
            self._pending = self._d.unconsumed_tail
            if chunk:
                out.append(chunk)
                have += len(chunk)
            elif drained:
                break
        return out

    def finished(self) -> bool:
        """Whether the stream ended exactly here (its Adler-32 checked by ISA-L)."""
        if not self._d.eof and self.take(1):
            return False  # more rows than the header says
        return bool(self._d.eof)


@dataclass(frozen=True)
class _Band:
    """Rows of the photo as a PNG of their own, in stored (uncompressed) deflate blocks.

    With ``slots`` the PNG's first row is the row above the band, still to be written in (it is
    unfiltered only after this band was made, on another thread): (offset, length) pieces."""

    png: bytearray
    slots: list[tuple[int, int]]

    def fill(self, above: NDArray[np.uint8]) -> None:
        """Write the row above (its pixels; its filter byte is None) into the slots."""
        row = np.concatenate([np.zeros(1, np.uint8), above.reshape(-1)])
        buf = np.frombuffer(self.png, dtype=np.uint8)
        done = 0
        for offset, length in self.slots:
            buf[offset : offset + length] = row[done : done + length]
            done += length


def _stored_png(header: _Header, rows: int, pieces: Sequence[bytes], lead: int = 0) -> _Band:
    """A PNG of ``rows`` rows: ``lead`` bytes left for the row above (0: none), then ``pieces``
    (filtered rows), in stored blocks. The copies are numpy's, which let go of the GIL: the
    thread unfiltering the band before this one is not held up (24 MP: up to 15 ms)."""
    ihdr = struct.pack(">IIBBBBB", header.width, rows, 8, header.colour, 0, 0, 0)
    total = lead + sum(len(p) for p in pieces)
    blocks = -(-total // _STORED_MAX)
    idat_len = 2 + 5 * blocks + total + 4
    out = bytearray(8 + 25 + 8 + idat_len + 4 + 12)
    head = b"".join([_SIGNATURE, _chunk(b"IHDR", ihdr), struct.pack(">I", idat_len)])
    out[: len(head) + 6] = head + b"IDAT\x78\x01"
    base = len(head) + 6
    stream = np.frombuffer(out, dtype=np.uint8)[base : base + 5 * blocks + total]
    full = total // _STORED_MAX
    stream[: full * _BLOCK].reshape(full, _BLOCK)[:, :5] = _FULL_BLOCK
    last = total - full * _STORED_MAX
    if last:
        stream[full * _BLOCK : full * _BLOCK + 5] = np.frombuffer(
            struct.pack("<BHH", 1, last, last ^ 0xFFFF), dtype=np.uint8
        )
    else:
        stream[(full - 1) * _BLOCK] = 1  # the last block is full: it is marked the last
    at = lead
    for piece in pieces:
        _place(stream, np.frombuffer(piece, dtype=np.uint8), at)
        at += len(piece)
    out[base + stream.size + 8 :] = _IEND  # after the Adler-32 and CRC, 0: libspng ignores them
    return _Band(out, [(base + o, n) for o, n in _spans(0, lead)])


def _spans(start: int, stop: int) -> Iterator[tuple[int, int]]:
    """Stream positions start..stop as (offset in the blocks, length) pieces, one per block."""
    while start < stop:
        block, within = divmod(start, _STORED_MAX)
        size = min(_STORED_MAX - within, stop - start)
        yield block * _BLOCK + 5 + within, size
        start += size


def _place(stream: NDArray[np.uint8], data: NDArray[np.uint8], at: int) -> None:
    """Copy ``data`` into the stored blocks from stream position ``at``: what is left of the
    block it starts in, its whole blocks in one strided copy, the start of its last block."""
    n = data.size
    head = min(-at % _STORED_MAX, n)
    whole = (n - head) // _STORED_MAX
    tail = head + whole * _STORED_MAX
    for offset, size in _spans(at, at + head):  # one span at most
        stream[offset : offset + size] = data[:head]
    if whole:
        first = (at + head) // _STORED_MAX
        grid = stream[first * _BLOCK : (first + whole) * _BLOCK].reshape(whole, _BLOCK)
        grid[:, 5:] = data[head:tail].reshape(whole, _STORED_MAX)
    for offset, size in _spans(at + tail, at + n):  # one span at most
        stream[offset : offset + size] = data[tail:]


def _band(header: _Header, inflater: _Inflater, rows: int, above: bool) -> _Band | None:
    """The next ``rows`` rows inflated and made a PNG (room for the row above if ``above``);
    None if the stream ends before them. On the pool, ahead of the rows being unfiltered."""
    size = rows * header.row_bytes
    pieces = inflater.take(size)
    if sum(len(p) for p in pieces) != size:
        return None  # the stream ended early
    return _stored_png(header, rows + above, pieces, header.row_bytes if above else 0)


def _unfilter(lib: Any, png: bytearray, out: NDArray[np.uint8]) -> bool:
    ctx = lib.spng_ctx_new(_SPNG_CTX_IGNORE_ADLER32)
    if not ctx:
        return False
    try:
        lib.spng_set_crc_action(ctx, _SPNG_CRC_USE, _SPNG_CRC_USE)
        buf = (ctypes.c_char * len(png)).from_buffer(png)
        lib.spng_set_png_buffer(ctx, buf, len(png))
        return bool(lib.spng_decode_image(ctx, out.ctypes.data, out.nbytes, _SPNG_FMT_PNG, 0) == 0)
    finally:
        lib.spng_ctx_free(ctx)


def read_png(data: bytes, pool: Executor | None = None) -> NDArray[np.uint8] | None:
    """The pixels of an 8-bit, non-interlaced PNG as HxWxC uint8 (C = 1, 2, 3 or 4), or None
    when this reader does not read it (another bit depth, interlacing, a palette, damage)."""
    lib = _libspng()
    header = _Header.parse(data) if lib is not None else None
    if header is None:
        return None
    try:
        return _read(lib, header, pool)
    except isal_zlib.error:  # type: ignore[misc]  # typed as a function in isal's stubs
        return None  # a damaged stream


@functools.cache
def _madvise() -> Any:
    """libc's ``madvise`` through ctypes (which lets go of the GIL), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _prefault(madvise: Any, out: NDArray[np.uint8]) -> None:
    """Fault ``out``'s pages in, front to back, ahead of the rows written into it. On a pool
    thread, so the thread that writes the rows does not take the faults itself (96 MB of them
    cost it 45 ms). A kernel without MADV_POPULATE_WRITE says so at once, and the rows then
    fault their pages in as before."""
    address, size = out.ctypes.data, out.nbytes
    for offset in range(0, size, _PREFAULT_CHUNK):
        if madvise(address + offset, min(_PREFAULT_CHUNK, size - offset), _MADV_POPULATE_WRITE):
            return


def _output(h: int, w: int, c: int, pool: Executor | None) -> NDArray[np.uint8]:
    """The array the rows are decoded into. A large one gets plain pages, not numpy's (which
    asks the kernel for huge pages): with those, one 24 MP decode in three took 0.4-0.7 s
    instead of 0.2 here. A small one keeps them (1.5 MP: 2 ms fewer page faults). A large
    one's pages are faulted in on the pool while the first rows inflate (``_prefault``)."""
    if h * w * c < _PLAIN_PAGES:
        return np.empty((h, w, c), dtype=np.uint8)
    out = np.frombuffer(mmap.mmap(-1, h * w * c), dtype=np.uint8).reshape(h, w, c)
    madvise = _madvise()
    if pool is not None and madvise is not None:
        pool.submit(_prefault, madvise, out)
    return out


def _read(lib: Any, header: _Header, pool: Executor | None) -> NDArray[np.uint8] | None:
    h, w, c = header.height, header.width, header.channels
    band_rows = max(1, _BAND_BYTES // header.row_bytes)
    inflater = _Inflater(header.idat)
    out = _output(h, w, c, pool)
    band = _band(header, inflater, min(band_rows, h), above=False)
    y = 0
    while y < h:
        if band is None:
            return None
        end = min(y + band_rows, h)
        ahead: Future[_Band | None] | None = None
        after = (header, inflater, min(band_rows, h - end), True)
        if end < h and pool is not None:
            ahead = pool.submit(_band, *after)  # inflated and copied while these rows unfilter
        if y:
            band.fill(out[y - 1])
        if not _unfilter(lib, band.png, out[y - 1 if y else 0 : end]):
            return None
        y = end
        if end < h:
            band = ahead.result() if ahead is not None else _band(*after)
    return out if inflater.finished() else None
