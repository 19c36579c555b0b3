"""A zlib stream inflated in place: ISA-L writes the bytes wherever the caller asks.

Python's inflaters (zlib's, python-isal's, zlib-ng's) return new ``bytes``, which the PNG reader
then had to copy into its stored deflate blocks (1.5 MP: 1.6 of its 9 ms of inflating). ISA-L's
own C API takes an output pointer, and python-isal's extension module exports it, so it is
called here through ctypes (which lets go of the GIL) and writes each block's bytes in place.

Only the cursors at the head of ISA-L's ``struct inflate_state`` are touched (``igzip_lib.h``:
next_out, avail_out, total_out, next_in, read_in, avail_in, unchanged since ISA-L 2.x); the
rest of the state is ISA-L's own. The stream is inflated as raw deflate; its zlib header and
Adler-32 are checked here. On first use a known stream is inflated and compared: an ISA-L
that does not give it back exactly is not used (``inflater`` gives None).
"""

from __future__ import annotations

import ctypes
import functools
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from isal import isal_zlib

__all__ = ["Inflater", "inflater"]

_STATE_BYTES = 1 << 18  # room for ISA-L's state (about 90 KB in ISA-L 2.3x), and to spare
_PIECE = 1 << 20  # compressed bytes handed to ISA-L at a time, at least (see _coalesced)
_SAMPLE = bytes(range(256)) * 37 + b"clearbg " * 4000  # the first-use check's stream


class _Cursors(ctypes.Structure):
    """The head of ISA-L's ``struct inflate_state``."""

    _fields_ = [
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint32),
        ("total_out", ctypes.c_uint32),
        ("next_in", ctypes.c_void_p),
        ("read_in", ctypes.c_uint64),
        ("avail_in", ctypes.c_uint32),
    ]


class Inflater:
    """A zlib stream, given as pieces (a PNG's IDAT chunks, read in place), inflated on demand
    into given places of writable buffers."""

    def __init__(self, lib: Any, pieces: Sequence[memoryview | bytes]) -> None:
        self._lib = lib
        self._pieces = [np.frombuffer(p, dtype=np.uint8) for p in _coalesced(pieces)]
        self._state = ctypes.create_string_buffer(_STATE_BYTES)
        lib.isal_inflate_init(self._state)
        self._cursors = _Cursors.from_buffer(self._state)
        self._inputs = self._deflate_part()
        self.adler = 1  # of what has been inflated so far

    def _deflate_part(self) -> Iterator[tuple[int, int]]:
        """(address, length) of the stream's pieces without its 2-byte header and 4-byte
        Adler-32 (an empty iterator when the header is not plain deflate)."""
        total = sum(p.size for p in self._pieces)
        if total < 6 or not _plain_deflate(self._first(2)):
            return iter(())
        spans: list[tuple[int, int]] = []
        at = 0
        for p in self._pieces:
            lo, hi = max(at, 2), min(at + p.size, total - 4)
            if lo < hi:
                spans.append((p.ctypes.data + lo - at, hi - lo))
            at += p.size
        return iter(spans)

    def _first(self, n: int) -> bytes:
        """The stream's first ``n`` bytes (pieces are never empty: these are in the first n)."""
        return np.concatenate([p[:n] for p in self._pieces[:n]])[:n].tobytes()

    def _last(self, n: int) -> bytes:
        """The stream's last ``n`` bytes."""
        return np.concatenate([p[-n:] for p in self._pieces[-n:]])[-n:].tobytes()

    def into(self, buf: bytearray, spans: Iterable[tuple[int, int]]) -> bool:
        """Inflate the next bytes of the stream into ``buf`` at each (offset, length) span in
        turn; False if the stream is damaged or ends first."""
        address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        view = memoryview(buf)
        c = self._cursors
        for offset, length in spans:
            if offset < 0 or length < 0 or offset + length > len(buf):
                raise ValueError(f"{length} bytes at {offset} do not fit in {len(buf)}")
            c.next_out, c.avail_out = address + offset, length
            while c.avail_out:
                if not c.avail_in:
                    nxt = next(self._inputs, None)
                    if nxt is not None:
                        c.next_in, c.avail_in = nxt
                left = (c.avail_out, c.avail_in)
                if self._lib.isal_inflate(self._state) < 0 or (c.avail_out, c.avail_in) == left:
                    return False  # damaged, or nothing more to read
            self.adler = isal_zlib.adler32(view[offset : offset + length], self.adler)
        return True

    def finished(self) -> bool:
        """Whether the stream ends here (nothing more to inflate) with the Adler-32 of what
        was inflated."""
        if self.into(bytearray(1), [(0, 1)]):
            return False  # more bytes than the caller asked for
        return bool(self._pieces) and struct.unpack(">I", self._last(4))[0] == self.adler


def _coalesced(pieces: Sequence[memoryview | bytes]) -> list[memoryview | bytes]:
    """The pieces, small neighbours joined into pieces of about ``_PIECE`` bytes (a PNG's IDAT
    chunks are often 8 KB: one call of ISA-L each cost plants-1 about 2 ms); large ones are
    read where they are."""
    out: list[memoryview | bytes] = []
    run: list[memoryview | bytes] = []
    size = 0
    for p in pieces:
        if len(p) >= _PIECE:
            out += [b"".join(run), p] if run else [p]
            run, size = [], 0
            continue
        run.append(p)
        size += len(p)
        if size >= _PIECE:
            out.append(b"".join(run))
            run, size = [], 0
    if run:
        out.append(b"".join(run))
    return [p for p in out if len(p)]


def _plain_deflate(head: bytes) -> bool:
    """Whether a zlib header says deflate with no preset dictionary (and checks out)."""
    if len(head) != 2:
        return False
    cmf, flg = head
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and not flg & 0x20 and (cmf << 8 | flg) % 31 == 0


@functools.cache
def _isal() -> Any:
    """ISA-L's inflate API from python-isal's extension module, or None when it is not
    exported there or does not give a known stream back exactly."""
    try:
        lib = ctypes.CDLL(isal_zlib.__file__)
        lib.isal_inflate_init.argtypes = [ctypes.c_void_p]
        lib.isal_inflate_init.restype = None
        lib.isal_inflate.argtypes = [ctypes.c_void_p]
        lib.isal_inflate.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    stream = isal_zlib.compress(_SAMPLE, 1)
    out = bytearray(len(_SAMPLE))
    half = len(out) // 2
    check = Inflater(lib, [stream[:7], stream[7:]])
    if not (check.into(out, [(0, half), (half, len(out) - half)]) and check.finished()):
        return None
    return lib if out == _SAMPLE else None


def inflater(pieces: Sequence[memoryview | bytes]) -> Inflater | None:
    """An inflater of the zlib stream in ``pieces``, or None where ISA-L's API is not usable."""
    lib = _isal()
    return None if lib is None else Inflater(lib, pieces)
