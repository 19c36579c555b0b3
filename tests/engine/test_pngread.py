"""The fast PNG reader: the very pixels libspng and Pillow decode, band by band; None for what
it does not read, so the usual decoders report the error."""

from __future__ import annotations

import io
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyspng
import pytest
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine import imageio, inflate, pngread
from clearbg.engine.png import _COLOR_TYPES, _SIGNATURE, _chunk
from clearbg.engine.pngread import read_png
from tests.conftest import PHOTOS
from tests.engine.synthetic import MODES, png_chunks, tiled_photo


def _photo(width: int, height: int, channels: int) -> NDArray[np.uint8]:
    return tiled_photo(width, height, channels, seed=width)


def _png(pixels: NDArray[np.uint8], **params: int | bool) -> bytes:
    im = Image.fromarray(
        pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, MODES[pixels.shape[2]]
    )
    buf = io.BytesIO()
    im.save(buf, "PNG", **params)
    return buf.getvalue()


def _every_filter(pixels: NDArray[np.uint8]) -> bytes:
    """A PNG whose rows use the five filter types in turn (None, Sub, Up, Average, Paeth),
    written here so that every one is there to undo, whatever an encoder would choose."""
    h, w, c = pixels.shape
    x = pixels.reshape(h, w * c).astype(np.int16)
    rows = []
    for y in range(h):
        up = x[y - 1] if y else np.zeros_like(x[0])
        left = np.concatenate([np.zeros(c, np.int16), x[y, :-c]])
        corner = np.concatenate([np.zeros(c, np.int16), up[:-c]])
        p = left + up - corner
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - corner)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
        kind = y % 5
        predicted = [0, left, up, (left + up) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((x[y] - predicted) % 256).astype(np.uint8).tobytes())
    ihdr = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    body = [(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"".join(rows))), (b"IEND", b"")]
    return _SIGNATURE + b"".join(_chunk(kind, data) for kind, data in body)


def _rechunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """The PNG with the first chunk of ``kind`` replaced by ``body`` (a correct CRC)."""
    out = [data[:8]]
    done = False
    for k, old in png_chunks(data):
        new = body if k == kind and not done else old
        done = done or k == kind
        out.append(_chunk(k, new))
    return b"".join(out)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as p:
        yield p


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("band_bytes", [1, 5000, 2 << 20])
def test_every_colour_type_in_bands_gives_the_pixels_written(
    channels: int, band_bytes: int, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # band_bytes 1: a band of one row each; 5000: bands of a few rows; 2 MB: one band
    monkeypatch.setattr(pngread, "_BAND_BYTES", (band_bytes, band_bytes))
    pixels = _photo(333, 121, channels)
    data = _every_filter(pixels)
    with Image.open(io.BytesIO(data)) as im:  # the test's own writer is right
        np.testing.assert_array_equal(np.asarray(im).reshape(pixels.shape), pixels)
    for executor in (pool, None):
        got = read_png(data, executor)
        assert got is not None
        np.testing.assert_array_equal(got, pixels)


@pytest.mark.parametrize("band_bytes", [1, 200_000])
def test_rows_longer_than_a_stored_block(
    band_bytes: int, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row of 66,001 bytes spans two stored blocks, and so does the row above that each band
    after the first leads with."""
    monkeypatch.setattr(pngread, "_BAND_BYTES", (band_bytes, band_bytes))
    pixels = _photo(22_000, 7, 3)
    got = read_png(_every_filter(pixels), pool)
    assert got is not None
    np.testing.assert_array_equal(got, pixels)


@pytest.mark.parametrize(
    ("rows", "row_bytes", "above"),
    [(1, 65535, False), (1, 65278, True), (2, 65535, False), (5, 40_000, True), (1, 66_001, True)],
)
def test_a_band_is_a_valid_stored_stream(rows: int, row_bytes: int, above: bool) -> None:
    """Each band handed to libspng is a whole deflate stream (the last block marked last, also
    when it is full) whose blocks ISA-L filled in place, from a stream in two IDAT chunks, and
    the row above lands in its slots. libspng stops once it has the rows, so only a stream read
    to its end shows a missing final mark."""
    rng = np.random.default_rng(rows + row_bytes)
    raw = rng.integers(0, 256, rows * row_bytes, dtype=np.uint8).tobytes()
    compressed = zlib.compress(raw)
    source = inflate.inflater([compressed[:1000], compressed[1000:]])
    assert source is not None
    header = pngread._Header(1, 1, 0, [])
    header.row_bytes = row_bytes
    band = pngread._band(header, source, rows, above)
    assert band is not None and source.finished()
    row_above = rng.integers(0, 256, row_bytes - 1, dtype=np.uint8) if above else None
    if row_above is not None:
        band.fill(row_above)
    at = 8 + 25  # the signature, the IHDR chunk; the IDAT chunk (its CRC left 0) is next
    (length,) = struct.unpack_from(">I", band.png, at)
    assert band.png[at + 4 : at + 8] == b"IDAT"
    idat = bytes(band.png[at + 8 : at + 8 + length])
    inflater = zlib.decompressobj(-15)
    got = inflater.decompress(idat[2:-4])
    assert inflater.eof and not inflater.unused_data
    first = b"" if row_above is None else b"\0" + row_above.tobytes()
    assert got == first + raw


def test_a_photo_png_and_many_idat_chunks(pool: ThreadPoolExecutor) -> None:
    data = (PHOTOS / "plants-1.jpg").read_bytes()  # a 1.5 MP RGBA PNG in 8 KB IDAT chunks
    assert sum(kind == b"IDAT" for kind, _ in png_chunks(data)) > 100
    got = read_png(data, pool)
    assert got is not None
    np.testing.assert_array_equal(got, pyspng.load(data))


@pytest.mark.parametrize(
    "size",
    [(1, 1), (1, 300), (300, 1), (17, 3)],
)
def test_tiny_and_thin_images(size: tuple[int, int], pool: ThreadPoolExecutor) -> None:
    pixels = _photo(*size, 3)
    got = read_png(_png(pixels), pool)
    assert got is not None
    np.testing.assert_array_equal(got, pixels)


def test_what_it_does_not_read_gives_none(pool: ThreadPoolExecutor) -> None:
    pixels = _photo(40, 30, 3)
    data = _png(pixels)
    ihdr = next(body for kind, body in png_chunks(data) if kind == b"IHDR")
    interlaced = _rechunk(data, b"IHDR", ihdr[:12] + b"\x01")
    assert read_png(interlaced, pool) is None
    palette = io.BytesIO()
    Image.fromarray(pixels).quantize(16).save(palette, "PNG")
    assert read_png(palette.getvalue(), pool) is None
    sixteen = io.BytesIO()
    Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257).save(sixteen, "PNG")
    assert read_png(sixteen.getvalue(), pool) is None
    assert read_png(b"not a png at all", pool) is None


def test_damage_gives_none_never_a_crash(pool: ThreadPoolExecutor) -> None:
    pixels = _photo(200, 150, 4)
    data = _every_filter(pixels)  # one IDAT chunk
    idat = next(body for kind, body in png_chunks(data) if kind == b"IDAT")
    # a flipped byte: the chunk's CRC no longer matches
    at = data.index(b"IDAT") + 4 + len(idat) // 2
    flipped = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    assert read_png(flipped, pool) is None
    # the same damage with a correct CRC: the inflater or the Adler-32 catches it
    bad = bytearray(idat)
    bad[len(bad) // 2] ^= 0xFF
    assert read_png(_rechunk(data, b"IDAT", bytes(bad)), pool) is None
    # rows that are too short, and a filter type that does not exist
    raw = zlib.decompress(idat)
    assert read_png(_rechunk(data, b"IDAT", zlib.compress(raw[:-7])), pool) is None
    wrong = bytearray(raw)
    wrong[(200 * 4 + 1) * 5] = 9
    assert read_png(_rechunk(data, b"IDAT", zlib.compress(bytes(wrong))), pool) is None
    # a header that claims more rows than the file could hold, or whose CRC is wrong: refused
    # before anything is allocated
    ihdr = next(body for kind, body in png_chunks(data) if kind == b"IHDR")
    huge = struct.pack(">II", 60000, 60000) + ihdr[8:]
    assert read_png(_rechunk(data, b"IHDR", huge), pool) is None
    at = data.index(b"IHDR") + 5
    assert read_png(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :], pool) is None
    # cut short
    for end in (len(data) // 2, len(data) - 20):
        assert read_png(data[:end], pool) is None
    # the usual decoder still names the damage
    with pytest.raises(imageio.TruncatedImageError):
        imageio.decode(imageio.probe(data[: len(data) // 2], 100), pool)


def test_decode_reads_pngs_with_it_and_agrees_with_pillow(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[bool] = []

    def spy(data: bytes, executor: object = None) -> NDArray[np.uint8] | None:
        got = read_png(data, pool)
        read.append(got is not None)
        return got

    monkeypatch.setattr(imageio, "read_png", spy)
    for channels in (1, 2, 3, 4):
        pixels = _photo(64, 48, channels)
        if channels in (2, 4):
            pixels[0, 0, -1] = 0  # real transparency, kept as alpha
        data = _png(pixels, optimize=True)
        fast = imageio.decode(imageio.probe(data, 100), pool)
        with Image.open(io.BytesIO(data)) as im:
            slow = imageio._split(np.asarray(im))
        np.testing.assert_array_equal(fast.data, slow.data)
    assert read == [True] * 4  # the reader decoded every one, not the fallback


def test_a_large_image_is_decoded_into_plain_pages_the_same(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pngread, "_PLAIN_PAGES", 0)  # what a 24 MP photo gets
    pixels = _photo(300, 200, 4)
    got = read_png(_png(pixels, optimize=True), pool)
    assert got is not None and got.flags.writeable
    np.testing.assert_array_equal(got, pixels)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux's")
@pytest.mark.parametrize("kernel_refuses", [False, True])
def test_a_large_images_pages_are_faulted_in_on_the_pool(
    monkeypatch: pytest.MonkeyPatch, kernel_refuses: bool
) -> None:
    """The pages of a large output are faulted in by a pool thread, all of them, chunk by
    chunk; a kernel that refuses the advice leaves the rows to fault them in, same pixels."""
    real = pngread._madvise()
    assert real is not None
    calls: list[tuple[int, int, str]] = []

    def spy(address: int, size: int, advice: int) -> int:
        calls.append((size, advice, threading.current_thread().name))
        return -1 if kernel_refuses else int(real(address, size, advice))

    monkeypatch.setattr(pngread, "_PLAIN_PAGES", 0)
    monkeypatch.setattr(pngread, "_PREFAULT_CHUNK", 4096)
    monkeypatch.setattr(pngread, "_madvise", lambda: spy)
    pixels = _photo(300, 200, 4)
    with ThreadPoolExecutor(2, thread_name_prefix="decode-pool") as pool:
        got = read_png(_png(pixels, optimize=True), pool)
    assert got is not None
    np.testing.assert_array_equal(got, pixels)
    assert {(advice, name.startswith("decode-pool")) for _, advice, name in calls} == {(23, True)}
    if kernel_refuses:
        assert len(calls) == 1  # asked once, then left alone
    else:
        assert sum(size for size, _, _ in calls) == pixels.nbytes
        assert len(calls) == -(-pixels.nbytes // 4096)


@pytest.mark.parametrize(
    ("module", "loader"), [(pngread, "_libspng"), (inflate, "_isal")], ids=["libspng", "ISA-L"]
)
def test_without_a_c_api_the_usual_decoders_read_it(
    module: object, loader: str, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pyspng whose extension no longer exports libspng 0.7's API, or a python-isal whose
    extension does not export ISA-L's inflate (or inflates the check stream wrong): nothing is
    called through ctypes, and the photo decodes as before."""
    monkeypatch.setattr(module, loader, lambda: None)
    pixels = _photo(64, 48, 3)
    data = _png(pixels)
    assert read_png(data, pool) is None
    np.testing.assert_array_equal(imageio.decode(imageio.probe(data, 100), pool).data, pixels)


def test_a_busy_pool_leaves_the_unfiltering_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no pool thread free, the calling thread unfilters the bands itself rather than
    wait for one (the bands queued for the pool included)."""
    monkeypatch.setattr(pngread, "_BAND_BYTES", (5000, 5000))  # many bands
    pixels = _photo(333, 121, 3)
    data = _every_filter(pixels)
    release = threading.Event()
    with ThreadPoolExecutor(1) as busy:
        blocker = busy.submit(release.wait, 30)
        got = read_png(data, busy)
        assert not blocker.done()  # decoded while the pool's only thread was still busy
        release.set()
    assert got is not None
    np.testing.assert_array_equal(got, pixels)


@pytest.mark.parametrize("bad_row", [3, 60, 120])
def test_a_band_the_pool_cannot_unfilter_gives_none(
    bad_row: int, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter type that does not exist, in an early, middle or last band: None, and neither
    thread is left waiting for the other."""
    monkeypatch.setattr(pngread, "_BAND_BYTES", (5000, 5000))
    pixels = _photo(333, 121, 3)
    data = _every_filter(pixels)
    idat = next(body for kind, body in png_chunks(data) if kind == b"IDAT")
    raw = bytearray(zlib.decompress(idat))
    raw[(333 * 3 + 1) * bad_row] = 9
    assert read_png(_rechunk(data, b"IDAT", zlib.compress(bytes(raw))), pool) is None
    assert read_png(data, pool) is not None  # and the pool is free for the next photo
