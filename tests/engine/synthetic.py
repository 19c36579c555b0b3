"""Synthetic photos and masks for the engine tests: tiny ones for refinement and matting, and
a real photo tiled to any size for the PNG writer and reader."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from tests.conftest import PHOTOS

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode


def two_colours(h: int, w: int, edge: int, noise: int = 0) -> NDArray[np.uint8]:
    """Red on the left of column ``edge``, blue on the right; ``noise``: +-that much on each
    channel (seeded), so a filter cannot lean on flat colour."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :edge] = (220, 30, 30)
    rgb[:, edge:] = (30, 30, 220)
    if not noise:
        return rgb
    jitter = np.random.default_rng(0).integers(-noise, noise + 1, rgb.shape)
    return np.clip(rgb.astype(np.int16) + jitter, 0, 255).astype(np.uint8)


def soft_step(
    h: int, w: int, centre: float, width: float, offset: float = 0.0
) -> NDArray[np.float32]:
    """A mask going from 1 to 0 over ``width`` columns around ``centre`` (a blurred model mask);
    ``offset`` shifts where each column is sampled (0.5: at pixel centres)."""
    x = np.arange(w, dtype=np.float32) + offset
    return np.tile(np.clip((centre - x) / width + 0.5, 0, 1).astype(np.float32), (h, 1))


def tiled_photo(width: int, height: int, channels: int, seed: int = 0) -> NDArray[np.uint8]:
    """A real photo (car-1) tiled to the size, its first ``channels`` of RGBA, with noise in the
    low bits (seeded), so no row repeats and a PNG encoder's adaptive filters use every type."""
    photo = np.asarray(Image.open(PHOTOS / "car-1.jpg").convert("RGBA"))
    reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
    tiled = np.tile(photo, reps)[:height, :width, :channels]
    noise = np.random.default_rng(seed).integers(0, 4, tiled.shape, dtype=np.uint8)
    return np.ascontiguousarray(tiled ^ noise)


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), read one by one; every CRC is checked on the way."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        yield kind, body
        pos += 12 + length
