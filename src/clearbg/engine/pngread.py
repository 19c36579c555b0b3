"""A fast PNG reader: the calling thread inflates the rows with ISA-L, band by band, while a
pool thread unfilters them with libspng.

Written here because no library does both halves fast. libspng (through pyspng) is the quickest
unfilterer we have, but it inflates with zlib, three quarters of a photo PNG's decode (1.5 MP:
20 of 27 ms), and pyspng holds the GIL, so nothing else runs meanwhile. ISA-L inflates 2.5x
faster. So:

- each band of rows (about 0.25-2 MB) becomes a small PNG of its own whose data are stored
  (uncompressed) deflate blocks: their headers are written first, and ISA-L inflates the
  photo's rows straight in between them (``inflate.Inflater``, nothing copied), so libspng only
  unfilters;
- the band's first row is the row above it, with filter "None", so that its Up, Average and
  Paeth rows find what they need: the unfiltering thread writes it in once it has unfiltered it;
- the calling thread inflates and a pool thread unfilters the bands in turn, at most
  ``_AHEAD`` behind (a pool with no thread free leaves that to the calling thread too). The two
  halves take about as long: plants-1 right after an inference, 10.5 ms inflating and 11 ms
  unfiltering in 12 ms, the unfiltering thread ending last. libspng is called through ctypes,
  which lets go of the GIL, with the C API that pyspng's extension exports, and writes straight
  into the output array.

The photo's own checksums are still checked: each IDAT chunk's CRC (on the compressed bytes) and
the stream's Adler-32. Only 8-bit, non-interlaced grey, grey+alpha, RGB and RGBA PNGs are read
here; anything else, and any damage, gives None, and the caller decodes the usual way, which
reports the precise error.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import mmap
import queue
import struct
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray

from clearbg.engine.inflate import Inflater, inflater
from clearbg.engine.png import _COLOR_TYPES, _SIGNATURE, _chunk

__all__ = ["read_png"]

# the writer's table read the other way: PNG colour type -> channels
_CHANNELS = {kind: channels for channels, kind in _COLOR_TYPES.items()}
_IEND = _chunk(b"IEND", b"")
_SPNG_VERSION = b"0.7."  # the API (and the constants here) of libspng 0.7
_SPNG_FMT_PNG = 256  # samples as the PNG stores them (8-bit here: no byte order to mind)
_SPNG_CTX_IGNORE_ADLER32 = 1  # our stored blocks carry no checksum: the real one is checked
_SPNG_CRC_USE = 2  # our own chunks carry none either: the photo's were checked on the way in
_BAND_BYTES = (256 << 10, 2 << 20)  # raw bytes per band: a 16th of the rows within these bounds
_AHEAD = 4  # bands inflated and waiting to be unfiltered, at most
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


@dataclass(frozen=True)
class _Band:
    """Rows of the photo as a PNG of their own, in stored (uncompressed) deflate blocks.

    With ``slots`` the PNG's first row is the row above the band, still to be written in (it is
    unfiltered only after this band was made, on another thread): (offset, length) pieces."""

    png: bytearray
    slots: list[tuple[int, int]]
    rows: int  # the band's own rows (not counting the row above)
    above: bool
    base: int  # where the stream's blocks start in ``png``

    def fill(self, above: NDArray[np.uint8]) -> None:
        """Write the row above (its pixels; its filter byte is None) into the slots."""
        row = np.concatenate([np.zeros(1, np.uint8), above.reshape(-1)])
        buf = np.frombuffer(self.png, dtype=np.uint8)
        done = 0
        for offset, length in self.slots:
            buf[offset : offset + length] = row[done : done + length]
            done += length


def _blank_band(header: _Header, rows: int, lead: int) -> tuple[bytearray, int, int]:
    """A PNG of ``rows`` rows of ``header``'s kind in stored blocks whose bytes are left to be
    written: the file, where its stream's blocks start, and the stream's length (``lead``
    bytes for the row above, 0 for none, then the band's own rows)."""
    ihdr = struct.pack(">IIBBBBB", header.width, rows, 8, header.colour, 0, 0, 0)
    total = lead + (rows - (lead > 0)) * header.row_bytes
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
    out[base + stream.size + 8 :] = _IEND  # after the Adler-32 and CRC, 0: libspng ignores them
    return out, base, total


def _spans(start: int, stop: int, base: int = 0) -> Iterator[tuple[int, int]]:
    """Stream positions start..stop as (offset, length) pieces, one per block; offsets from
    ``base`` (where the blocks start)."""
    while start < stop:
        block, within = divmod(start, _STORED_MAX)
        size = min(_STORED_MAX - within, stop - start)
        yield base + block * _BLOCK + 5 + within, size
        start += size


def _band(
    header: _Header, source: Inflater, rows: int, above: bool, spare: _Band | None = None
) -> _Band | None:
    """The next ``rows`` rows inflated into a PNG of their own (with room for the row above
    if ``above``); None if the stream is damaged or ends before them. ``spare``: a band
    already unfiltered, whose file is written over if it has this shape (its headers and
    block layout are then the same; the rows and the row above are all written anew)."""
    lead = header.row_bytes if above else 0
    if spare is not None and (spare.rows, spare.above) == (rows, above):
        band = spare
    else:
        png, base, _ = _blank_band(header, rows + above, lead)
        band = _Band(png, list(_spans(0, lead, base)), rows, above, base)
    if not source.into(band.png, _spans(lead, lead + rows * header.row_bytes, band.base)):
        return None
    return band


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
    source = inflater(header.idat) if header is not None else None
    if header is None or source is None:
        return None
    return _read(lib, header, source, pool)


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


def _bands(height: int, row_bytes: int) -> list[int]:
    """Where each band of rows ends: a 16th of the rows each, within ``_BAND_BYTES``. Short
    bands keep the unfiltering thread close behind (it waits for the first band, and the last
    is unfiltered after all is inflated); long ones cost fewer calls (1.5 MP: 512 KB bands
    decoded in 11.0 ms, 2 MB ones in 12.4; 24 MP: 118 against 105 ms). Since band files are
    reused (``_Unfilterer.spares``) the least is 256 KB, not 512: a 1.5 MP RGBA photo's 16th
    (365 KB) stays in the caches."""
    low, high = _BAND_BYTES
    rows = max(1, min(max(height * row_bytes // 16, low), high) // row_bytes)
    return [*range(rows, height, rows), height]


class _Unfilterer:
    """Unfilters bands in order into ``out``: on a pool thread (``run``), or on the calling one
    (``take``) when the pool has no thread to spare. Bands it is done with wait in ``spares``
    for the inflating thread to write the next rows into (``spare``): the same few files over
    and over, still in the CPU's caches, not a new one a band (plants-1, after an inference:
    11.9 against 12.8 ms, medians of 40 interleaved)."""

    def __init__(self, lib: Any, out: NDArray[np.uint8], ends: list[int]) -> None:
        self.lib, self.out, self.ends = lib, out, ends
        self.done = 0  # bands unfiltered
        self.failed = False
        self.spares: collections.deque[_Band] = collections.deque()

    def spare(self) -> _Band | None:
        """A band already unfiltered, if any (only the inflating thread takes them)."""
        try:
            return self.spares.popleft()
        except IndexError:
            return None

    def take(self, band: _Band | None) -> None:
        """Unfilter the next band (``failed`` says if libspng refused it); after a failure, or
        for None, nothing."""
        if band is None or self.failed:
            return
        y = self.ends[self.done - 1] if self.done else 0
        if y:
            band.fill(self.out[y - 1])
        ok = _unfilter(self.lib, band.png, self.out[y - 1 if y else 0 : self.ends[self.done]])
        self.done += 1
        self.failed = self.failed or not ok
        self.spares.append(band)

    def run(self, bands: queue.Queue[_Band | None]) -> None:
        """The bands from ``bands`` until None. After a failure the rest are only taken off the
        queue, so the thread filling it never waits on a full one."""
        try:
            while (band := bands.get()) is not None:
                self.take(band)
        except BaseException:
            self.failed = True
            while bands.get() is not None:
                pass
            raise

    def take_queued(self, bands: queue.Queue[_Band | None]) -> None:
        """The bands left in ``bands`` (which no other thread takes any more)."""
        while not bands.empty():
            self.take(bands.get_nowait())


def _read(
    lib: Any, header: _Header, source: Inflater, pool: Executor | None
) -> NDArray[np.uint8] | None:
    h, w, c = header.height, header.width, header.channels
    ends = _bands(h, header.row_bytes)
    out = _output(h, w, c, pool)
    unfilterer = _Unfilterer(lib, out, ends)
    bands: queue.Queue[_Band | None] = queue.Queue(_AHEAD)
    helper = pool.submit(unfilterer.run, bands) if pool is not None and len(ends) > 1 else None
    start = 0
    try:
        for k, end in enumerate(ends):
            band = _band(header, source, end - start, k > 0, unfilterer.spare())
            if band is None or unfilterer.failed:
                return None
            if helper is not None and bands.full() and helper.cancel():
                helper = None  # the pool has had no thread for it: the rest is unfiltered here
                unfilterer.take_queued(bands)
            if helper is None:
                unfilterer.take(band)  # a failure ends the loop at the next band, or below
            else:
                bands.put(band)
            start = end
    finally:
        if helper is not None:
            if helper.cancel():  # never started: what it was given is unfiltered here
                unfilterer.take_queued(bands)
            else:
                bands.put(None)
                helper.result()
    return out if not unfilterer.failed and source.finished() else None
