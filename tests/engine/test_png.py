"""The fast PNG writer: exact round trips through Pillow, one strip or many."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.png import encode_png, encode_png_rows
from tests.engine.synthetic import MODES, png_chunks, tiled_photo


def _pixels(width: int, height: int, channels: int) -> NDArray[np.uint8]:
    return tiled_photo(width, height, channels, seed=channels)


def _decode(data: bytes) -> tuple[Image.Image, NDArray[np.uint8]]:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im, np.asarray(im)


def _idat(data: bytes) -> bytes:
    """The concatenated IDAT payloads (every chunk's CRC checked on the way)."""
    return b"".join(body for kind, body in png_chunks(data) if kind == b"IDAT")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 3), (97, 61)])
def test_round_trips_exactly(channels: int, width: int, height: int) -> None:
    pixels = _pixels(width, height, channels)
    im, back = _decode(encode_png(pixels))
    assert (im.format, im.mode, im.size) == ("PNG", MODES[channels], (width, height))
    assert np.array_equal(back.reshape(pixels.shape), pixels)


@pytest.mark.parametrize(
    ("channels", "width", "height"),
    [(1, 1024, 4500), (2, 700, 3300), (3, 600, 2600), (4, 512, 2500)],
)
def test_images_taller_than_one_strip_round_trip(channels: int, width: int, height: int) -> None:
    # a strip holds about 1 MiB of raw rows: each of these needs several
    assert width * height * channels > 4 << 20
    pixels = _pixels(width, height, channels)
    data = encode_png(pixels)
    _, back = _decode(data)
    assert np.array_equal(back.reshape(pixels.shape), pixels)
    # zlib checks the combined Adler-32 of the joined strips
    raw = zlib.decompress(_idat(data))
    assert len(raw) == height * (width * channels + 1)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_strips_compressed_in_parallel_give_the_same_rows(channels: int) -> None:
    """The same filtered rows, strip for strip, whoever compresses them. (Not always the same
    bytes: ISA-L's compressed output for the same rows has differed between runs, once.)"""
    pixels = _pixels(800, 3000, channels)
    with ThreadPoolExecutor(2) as pool:
        parallel = encode_png(pixels, executor=pool)
        by_rows = encode_png_rows(800, 3000, channels, lambda y0, y1: pixels[y0:y1], executor=pool)
    rows = [zlib.decompress(_idat(d)) for d in (parallel, encode_png(pixels), by_rows)]
    assert rows[0] == rows[1] == rows[2]
    first = rows[0][:: 800 * channels + 1]  # each row's filter type
    assert set(first) == {0, 2} and first[0] == 0  # Up, and None where a strip starts
    _, back = _decode(parallel)
    assert np.array_equal(back.reshape(pixels.shape), pixels)


def test_a_busy_pool_does_not_hold_the_writer_up() -> None:
    """The calling thread compresses every strip itself when the pool has no thread free."""
    pixels = _pixels(800, 3000, 3)
    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(release.wait, 30)
        data = encode_png(pixels, executor=pool)
        assert not blocker.done()  # written while the pool's only thread was still busy
        release.set()
    _, back = _decode(data)
    assert np.array_equal(back, pixels)


def test_a_grey_image_may_be_two_dimensional() -> None:
    pixels = _pixels(40, 30, 1)[:, :, 0]
    im, back = _decode(encode_png(pixels))
    assert im.mode == "L"
    assert np.array_equal(back, pixels)


def test_a_non_contiguous_view_is_written_as_seen() -> None:
    pixels = _pixels(80, 60, 4)[::-2, 1::3]
    _, back = _decode(encode_png(pixels))
    assert np.array_equal(back, pixels)


def test_header_says_8_bit_and_the_size() -> None:
    data = encode_png(_pixels(33, 22, 4))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (33, 22, 8, 6)
    assert data.endswith(b"IEND\xae\x42\x60\x82")


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), np.float32)],
)
def test_refuses_what_it_cannot_write(pixels: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="cannot write a PNG"):
        encode_png(pixels)  # type: ignore[arg-type]
