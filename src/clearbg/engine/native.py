"""The one place ClearBG calls a C library directly: glibc's ``malloc_trim``.

ONNX Runtime parses a model's file into memory it frees once the session is built; glibc keeps
those freed pages in the process's heap, so without a trim the process stays larger. This is
a C library's public API, not another package's internals; off glibc (musl, macOS) there is
nothing to trim and nothing is called.

    u2net loaded and run twice: RSS 611 MB trimmed, 713 MB not  (bench/heap_trim.py --runs 5)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["trim_heap"]


@functools.cache
def _libc() -> Any:
    """glibc, or None where the C library has no ``malloc_trim``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return libc


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc only; elsewhere nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
