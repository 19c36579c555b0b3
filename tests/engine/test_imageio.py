"""Decoding photos as cameras, phones and editors write them; refusing what is not one.

Every image is made here with Pillow (or OpenCV, for 16-bit colour) from a real photo.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import cv2
import numpy as np
import pillow_heif
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

from clearbg.engine import imageio
from clearbg.engine.imageio import Pixels, decode, decode_small, encode, probe
from clearbg.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedFormatError,
)
from tests.conftest import PHOTOS
from tests.engine.synthetic import png_chunks, tiled_photo

pillow_heif.register_heif_opener()

LIMIT_MP = 50.0


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """car-1.jpg at 120x90: small, real, and not symmetric."""
    return Image.open(PHOTOS / "car-1.jpg").convert("RGB").resize((120, 90))


@pytest.fixture(scope="module")
def alpha() -> Image.Image:
    """Opaque on the right, half transparent in the middle, transparent on the left."""
    a = np.zeros((90, 120), np.uint8)
    a[:, 40:80] = 128
    a[:, 80:] = 255
    return Image.fromarray(a)


def save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def load(data: bytes) -> Pixels:
    return decode(probe(data, LIMIT_MP))


def rgb_of(im: Image.Image) -> NDArray[np.int16]:
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def mean_error(a: NDArray[np.generic], b: NDArray[np.generic]) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# -- formats -----------------------------------------------------------------------------------

FORMATS: dict[str, tuple[str, dict[str, object], float]] = {
    # name: (Pillow format to write, save parameters, largest mean error from the source)
    "jpeg": ("JPEG", {"quality": 95}, 4.0),
    "png": ("PNG", {}, 0.0),
    "webp": ("WEBP", {"lossless": True}, 0.0),
    "webp-lossy": ("WEBP", {"quality": 90}, 5.0),
    "bmp": ("BMP", {}, 0.0),
    "tiff": ("TIFF", {}, 0.0),
    "tiff-lzw": ("TIFF", {"compression": "tiff_lzw"}, 0.0),
    "heic": ("HEIF", {"quality": 90}, 5.0),
    "avif": ("AVIF", {"quality": 90}, 5.0),
}


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_decodes_to_the_photos_pixels(photo: Image.Image, name: str) -> None:
    fmt, params, tolerance = FORMATS[name]
    data = save(photo, fmt, **params)
    p = probe(data, LIMIT_MP)
    assert p.format == fmt
    assert p.size == (120, 90)
    px = decode(p)
    assert px.rgb.dtype == np.uint8
    assert px.rgb.shape == (90, 120, 3)
    assert px.alpha is None
    assert mean_error(px.rgb, rgb_of(photo)) <= tolerance


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {"duration": 100}), ("WEBP", {"lossless": True, "duration": 100}), ("TIFF", {})],
)
def test_an_animation_or_multi_page_file_gives_its_first_frame(
    photo: Image.Image, fmt: str, params: dict[str, object]
) -> None:
    second = ImageOps.mirror(photo)
    data = save(photo, fmt, save_all=True, append_images=[second], **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    px = load(data)
    assert px.rgb.shape == (90, 120, 3)
    first_err = mean_error(px.rgb, rgb_of(photo))
    assert first_err < 4.0  # GIF: a 256-colour palette
    assert first_err < mean_error(px.rgb, rgb_of(second)) / 3


def test_mpo_from_a_phone_gives_its_first_picture(photo: Image.Image) -> None:
    data = save(photo, "MPO", save_all=True, append_images=[ImageOps.flip(photo)], quality=95)
    p = probe(data, LIMIT_MP)
    assert p.format == "MPO"
    assert mean_error(decode(p).rgb, rgb_of(photo)) < 4.0


def decoded_by(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """Spy on one of imageio's fast decoders: an entry per call, whether it decoded the image
    (True) or gave up on it so that Pillow would (False)."""
    real = getattr(imageio, name)
    calls: list[bool] = []

    def spy(*args: object) -> NDArray[np.uint8] | None:
        got: NDArray[np.uint8] | None = real(*args)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(imageio, name, spy)
    return calls


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("baseline 4:4:4", {"subsampling": 0}),
        ("baseline 4:2:0", {"subsampling": 2}),
        ("progressive", {"progressive": True}),
        ("grey", {}),
        ("mpo", {}),
    ],
)
def test_a_jpeg_is_decoded_straight_into_numpy_with_the_pixels_pillow_gives(
    photo: Image.Image, kind: str, params: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    im = photo.convert("L") if kind == "grey" else photo
    if kind == "mpo":
        data = save(im, "MPO", save_all=True, append_images=[ImageOps.flip(photo)], quality=90)
    else:
        data = save(im, "JPEG", quality=90, **params)
    fast = decoded_by(monkeypatch, "_decode_jpeg")
    px = load(data)
    assert fast == [True]  # simplejpeg decoded it, not Pillow after it gave up
    with Image.open(io.BytesIO(data)) as ref:
        assert np.array_equal(px.rgb, np.asarray(ref.convert("RGB")))


@pytest.mark.parametrize("kind", ["rgb", "rgba", "10-bit"])
def test_a_heic_is_decoded_straight_into_numpy_with_the_pixels_pillow_gives(
    photo: Image.Image, alpha: Image.Image, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind == "10-bit":
        rgb16 = np.asarray(photo).astype(np.uint16) * 257
        heif = pillow_heif.from_bytes(mode="RGB;16", size=(120, 90), data=rgb16.tobytes())
        buf = io.BytesIO()
        heif.save(buf, quality=-1)
        data = buf.getvalue()
    else:
        im = photo.copy()
        if kind == "rgba":
            im.putalpha(alpha)
        data = save(im, "HEIF", quality=90)
    fast = decoded_by(monkeypatch, "_decode_heif")
    px = load(data)
    assert fast == [True]  # pillow_heif decoded it, not Pillow after it gave up
    with Image.open(io.BytesIO(data)) as ref:
        want = np.asarray(ref.convert("RGBA" if kind == "rgba" else "RGB"))
    assert np.array_equal(px.data, want)


# -- modes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(photo: Image.Image, fmt: str) -> None:
    cmyk = photo.convert("CMYK")
    px = load(save(cmyk, fmt))
    assert px.rgb.shape == (90, 120, 3)
    assert mean_error(px.rgb, rgb_of(cmyk)) < 4.0


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "JPEG", "BMP"])
def test_grey_becomes_three_equal_channels(photo: Image.Image, fmt: str) -> None:
    grey = photo.convert("L")
    px = load(save(grey, fmt))
    assert px.rgb.shape == (90, 120, 3)
    assert np.array_equal(px.rgb[..., 0], px.rgb[..., 2])
    assert mean_error(px.rgb[..., 0], np.asarray(grey)) < (5.0 if fmt == "JPEG" else 0.01)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_clipped(photo: Image.Image, fmt: str) -> None:
    grey8 = np.asarray(photo.convert("L"))
    grey16 = Image.fromarray(grey8.astype(np.uint16) * 257)  # full 16-bit range
    assert grey16.mode == "I;16"
    data = save(grey16, fmt)
    assert probe(data, LIMIT_MP).mode.startswith("I")
    px = load(data)
    assert np.array_equal(px.rgb[..., 1], grey8)


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16_bit_colour_is_scaled_to_8_bit(photo: Image.Image, ext: str) -> None:
    # Pillow cannot write 16-bit colour: OpenCV can (BGR order)
    rgb8 = np.asarray(photo)
    # the low byte must not leak into the result
    rgb16 = rgb8.astype(np.uint16) * 257 + np.where(rgb8 < 255, 100, 0).astype(np.uint16)
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb16[..., ::-1]))
    assert ok
    px = load(buf.tobytes())
    assert px.rgb.shape == (90, 120, 3)
    assert np.abs(px.rgb.astype(np.int16) - rgb8).max() <= 1


def test_10_bit_heic_as_phones_write_it(photo: Image.Image) -> None:
    rgb16 = np.asarray(photo).astype(np.uint16) * 257
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(120, 90), data=rgb16.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=-1)  # lossless, 10 bits per sample
    assert pillow_heif.open_heif(io.BytesIO(buf.getvalue())).info["bit_depth"] == 10
    px = load(buf.getvalue())
    assert px.rgb.dtype == np.uint8
    assert mean_error(px.rgb, rgb_of(photo)) < 3.0


def test_16_bit_colour_with_alpha(photo: Image.Image) -> None:
    rgba16 = np.asarray(photo.convert("RGBA")).astype(np.uint16) * 257
    rgba16[:, :40, 3] = 0
    rgba16[:, 40:80, 3] = 32896  # half
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgba16[..., [2, 1, 0, 3]]))
    assert ok
    px = load(buf.tobytes())
    assert px.alpha is not None
    assert (px.alpha[:, :40] == 0).all() and (px.alpha[:, 40:80] == 128).all()
    assert (px.alpha[:, 80:] == 255).all()
    assert np.array_equal(px.rgb, np.asarray(photo))


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_low_bit_depth_palettes(photo: Image.Image, bits: int) -> None:
    pal = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=2**bits)
    data = save(pal, "PNG", bits=bits)
    assert np.array_equal(load(data).rgb, rgb_of(Image.open(io.BytesIO(data))))


def test_bilevel_1_bit_is_black_and_white(photo: Image.Image) -> None:
    bw = photo.convert("1")
    for fmt in ("PNG", "BMP", "TIFF"):
        px = load(save(bw, fmt))
        assert set(np.unique(px.rgb).tolist()) == {0, 255}
        assert np.array_equal(px.rgb[..., 0], np.asarray(bw.convert("L")))


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "TIFF"])
def test_palette_without_transparency_is_opaque_rgb(photo: Image.Image, fmt: str) -> None:
    pal = photo.convert("P")
    px = load(save(pal, fmt))
    assert px.alpha is None
    assert mean_error(px.rgb, rgb_of(pal)) < 0.01


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_alpha(photo: Image.Image, fmt: str) -> None:
    pal = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    index = np.asarray(pal)
    hidden = int(index[0, 0])
    px = load(save(pal, fmt, transparency=hidden))
    assert px.alpha is not None
    assert np.array_equal(px.alpha == 0, index == hidden)
    assert (px.alpha[index != hidden] == 255).all()


def test_colour_key_transparency_of_an_rgb_png_becomes_alpha(photo: Image.Image) -> None:
    a = np.asarray(photo).copy()
    a[:10] = (1, 2, 3)
    px = load(save(Image.fromarray(a), "PNG", transparency=(1, 2, 3)))
    assert px.alpha is not None
    assert (px.alpha[:10] == 0).all()
    assert (px.alpha[10:] == 0).sum() < 20  # only pixels that really are (1, 2, 3)


@pytest.mark.parametrize(
    ("mode", "fmt", "tolerance"),
    [
        ("RGBA", "PNG", 0),
        ("RGBA", "TIFF", 0),
        ("RGBA", "WEBP", 0),
        ("RGBA", "AVIF", 3),
        ("RGBA", "HEIF", 3),
        ("LA", "PNG", 0),
        ("LA", "TIFF", 0),
    ],
)
def test_alpha_channel_is_kept(
    photo: Image.Image, alpha: Image.Image, mode: str, fmt: str, tolerance: int
) -> None:
    rgba = photo.copy()
    rgba.putalpha(alpha)
    im = rgba.convert(mode)
    params: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    px = load(save(im, fmt, **params))
    assert px.alpha is not None
    assert px.alpha.shape == (90, 120)
    err = np.abs(px.alpha.astype(np.int16) - np.asarray(alpha)).mean()
    assert err <= tolerance


def test_an_alpha_channel_that_is_all_opaque_is_dropped(photo: Image.Image) -> None:
    px = load(save(photo.convert("RGBA"), "PNG"))
    assert px.alpha is None
    assert np.array_equal(px.rgb, rgb_of(photo))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize("where", [(0, 0), (37, 61), (89, 119)])
def test_one_pixel_short_of_opaque_keeps_the_alpha(mode: str, where: tuple[int, int]) -> None:
    """One see-through pixel anywhere (on the sparse first look's grid or off it, last of all)
    keeps the alpha channel: it must not be taken for opaque."""
    im = Image.new(mode, (120, 90), (200, 255) if mode == "LA" else (200, 10, 40, 255))
    im.putpixel(where[::-1], (200, 254) if mode == "LA" else (200, 10, 40, 254))
    px = load(save(im, "PNG"))
    assert px.alpha is not None
    assert int(px.alpha[where]) == 254
    assert int(px.alpha.min()) == 254 and int(px.alpha.max()) == 255


# -- EXIF orientation --------------------------------------------------------------------------


def with_orientation(im: Image.Image, fmt: str, orientation: int, **params: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(im, fmt, exif=exif, **params)


def reference(data: bytes) -> NDArray[np.uint8]:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {}),
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
        ("MPO", {"save_all": True}),
    ],
)
def test_exif_orientation_matches_pillows_exif_transpose(
    photo: Image.Image, fmt: str, params: dict[str, object], orientation: int
) -> None:
    data = with_orientation(photo, fmt, orientation, **params)
    p = probe(data, LIMIT_MP)
    expected = reference(data)
    turned = orientation in (5, 6, 7, 8)
    assert p.size == ((90, 120) if turned else (120, 90))
    px = decode(p)
    assert px.rgb.shape == expected.shape
    assert np.array_equal(px.rgb, expected)


@pytest.mark.parametrize("orientation", [2, 6, 7])
@pytest.mark.parametrize(("mode", "fmt"), [("L", "JPEG"), ("LA", "PNG"), ("RGBA", "PNG")])
def test_exif_orientation_of_grey_and_transparent_photos(
    photo: Image.Image, mode: str, fmt: str, orientation: int
) -> None:
    """One channel, two and four are turned alike, the alpha with the colour."""
    im = photo.convert(mode)
    if mode != "L":  # real transparency, so the alpha is kept as its own layer
        im.putalpha(Image.linear_gradient("L").resize(im.size))
    data = with_orientation(im, fmt, orientation)
    with Image.open(io.BytesIO(data)) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGBA"))
    px = decode(probe(data, LIMIT_MP))
    assert np.array_equal(px.rgb, expected[:, :, :3])
    if mode != "L":
        assert px.alpha is not None
        assert np.array_equal(px.alpha, expected[:, :, 3])


@pytest.fixture(scope="module")
def big_photo() -> Image.Image:
    """Bigger than 640 px on its short side: the reduced JPEG decode applies."""
    return Image.open(PHOTOS / "car-1.jpg").convert("RGB").resize((1400, 700))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reduced_jpeg_decode_is_oriented_like_the_full_decode(
    big_photo: Image.Image, orientation: int
) -> None:
    data = with_orientation(big_photo, "JPEG", orientation, quality=90)
    p = probe(data, LIMIT_MP)
    small = decode_small(p, (320, 320))
    assert small is not None
    full = decode(p)
    assert full.size == p.size
    # DCT scaling by two: at least the model's size, oriented as the viewer sees it
    size = (p.size[0] // 2, p.size[1] // 2)
    assert small.shape == (size[1], size[0], 3)
    shrunk = np.asarray(Image.fromarray(full.rgb).resize(size, Image.Resampling.BOX))
    assert mean_error(small, shrunk) < 4.0


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("size", [(1440, 1080), (2900, 1500), (6000, 4000)])
def test_reduced_jpeg_decode_gives_pillows_draft_pixels(
    big_photo: Image.Image, mode: str, size: tuple[int, int]
) -> None:
    """The scale Pillow's ``draft`` picks (2, 4 and 8 here; libjpeg-turbo alone would take 3/8 of
    1440x1080) and its very pixels, as RGB."""
    data = save(big_photo.resize(size).convert(mode), "JPEG")
    small = decode_small(probe(data, LIMIT_MP), (320, 320))
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (320, 320))
        expected = np.asarray(im.convert("RGB"))
    assert small is not None
    assert np.array_equal(small, expected)


def test_reduced_decode_only_for_big_jpegs(photo: Image.Image, big_photo: Image.Image) -> None:
    assert decode_small(probe(save(photo, "JPEG"), LIMIT_MP), (320, 320)) is None
    assert decode_small(probe(save(big_photo, "PNG"), LIMIT_MP), (320, 320)) is None
    cmyk = save(big_photo.convert("CMYK"), "JPEG")
    assert decode_small(probe(cmyk, LIMIT_MP), (320, 320)) is None


def test_no_reduced_decode_for_a_progressive_jpeg(big_photo: Image.Image) -> None:
    """Its scans are decoded whole either way: the full decode comes first instead."""
    progressive = probe(save(big_photo, "JPEG", progressive=True), LIMIT_MP)
    assert progressive.progressive
    assert decode_small(progressive, (320, 320)) is None
    baseline = probe(save(big_photo, "JPEG"), LIMIT_MP)
    assert not baseline.progressive
    assert decode_small(baseline, (320, 320)) is not None


def test_broken_exif_does_not_refuse_a_readable_photo(photo: Image.Image) -> None:
    data = with_orientation(photo, "JPEG", 42)
    p = probe(data, LIMIT_MP)
    assert p.orientation == 1
    assert decode(p).size == (120, 90)


# -- refusals ----------------------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG start whose header claims a size; the pixels are never sent."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def corrupt(data: bytes, start: int, length: int, fill: int) -> bytes:
    out = bytearray(data)
    out[start : start + length] = bytes([fill]) * length
    return bytes(out)


def psd(im: Image.Image) -> bytes:
    """A Photoshop file of the photo (Pillow reads PSD but cannot write it)."""
    a = np.asarray(im.convert("RGB"))
    h, w, c = a.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, c, h, w, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # no colour data, resources or layers
    return head + sections + struct.pack(">H", 0) + a.transpose(2, 0, 1).tobytes()


def test_the_psd_maker_writes_a_file_pillow_reads(photo: Image.Image) -> None:
    im = Image.open(io.BytesIO(psd(photo)))
    assert (im.format, im.size) == ("PSD", (120, 90))
    assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(photo))


BAD: dict[str, tuple[Callable[[Image.Image], bytes], type[ImageError]]] = {
    "empty": (lambda im: b"", EmptyImageError),
    "text": (lambda im: b"name,price\nwidget,3\n", NotAnImageError),
    "pdf": (lambda im: save(im, "PDF"), NotAnImageError),
    "html": (lambda im: b"<!doctype html><html><body>hi</body></html>", NotAnImageError),
    "truncated-jpeg": (lambda im: save(im, "JPEG")[:1500], TruncatedImageError),
    "jpeg-without-end": (lambda im: save(im, "JPEG")[:-2], TruncatedImageError),
    "truncated-png": (lambda im: save(im, "PNG")[:5000], TruncatedImageError),
    "png-cut-in-header": (lambda im: save(im, "PNG")[:20], TruncatedImageError),
    "truncated-webp": (lambda im: save(im, "WEBP")[:800], TruncatedImageError),
    "truncated-heic": (lambda im: (d := save(im, "HEIF"))[: len(d) // 2], TruncatedImageError),
    "corrupt-jpeg": (lambda im: corrupt(save(im, "JPEG"), 400, 1600, 0), CorruptImageError),
    "corrupt-png": (lambda im: corrupt(save(im, "PNG"), 200, 60, 0xFF), CorruptImageError),
    "ico": (lambda im: save(im.resize((64, 64)), "ICO"), UnsupportedFormatError),
    "tga": (lambda im: save(im, "TGA"), UnsupportedFormatError),
    "pcx": (lambda im: save(im, "PCX"), UnsupportedFormatError),
    "ppm": (lambda im: save(im, "PPM"), UnsupportedFormatError),
    "psd": (psd, UnsupportedFormatError),
    "eps": (lambda im: save(im, "EPS"), UnsupportedFormatError),  # never handed to Ghostscript
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_raises_its_own_error(photo: Image.Image, name: str) -> None:
    make, error = BAD[name]
    with pytest.raises(error) as info:
        load(make(photo))
    assert info.value.status == (415 if error is UnsupportedFormatError else 400)
    assert info.value.exit_code == 3
    assert info.value.message


def test_unsupported_format_names_the_format_and_answers_415(photo: Image.Image) -> None:
    with pytest.raises(UnsupportedFormatError, match="ICO") as info:
        probe(save(photo.resize((32, 32)), "ICO"), LIMIT_MP)
    assert (info.value.status, info.value.code) == (415, "unsupported_format")


def test_decompression_bomb_is_refused_from_the_header_fast_and_small() -> None:
    data = png_header_claiming(100_000, 100_000)  # 10 gigapixels in 100 bytes
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(TooManyPixelsError) as info:
            load(data)
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "too_many_pixels"
    assert seconds < 0.5
    assert peak < 5_000_000


def test_the_configured_pixel_limit_is_checked_before_decoding() -> None:
    data = png_header_claiming(8000, 8000)  # 64 MP: below Pillow's own bomb limit
    with pytest.raises(TooManyPixelsError, match=r"64\.0 MP; the limit is 50 MP"):
        probe(data, 50)
    with pytest.raises(TooManyPixelsError, match="the limit is 1 MP"):
        probe(png_header_claiming(1001, 1000), 1)
    assert probe(png_header_claiming(1000, 1000), 1).size == (1000, 1000)


# -- encode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "pillow", "channels", "mode"),
    [
        ("png", "PNG", 4, "RGBA"),
        ("png", "PNG", 1, "L"),
        ("jpg", "JPEG", 3, "RGB"),
        ("jpg", "JPEG", 4, "RGB"),  # JPEG has no alpha: dropped
        ("webp", "WEBP", 4, "RGBA"),
        ("webp", "WEBP", 3, "RGB"),
    ],
)
def test_encode_writes_the_asked_format(
    photo: Image.Image, fmt: str, pillow: str, channels: int, mode: str
) -> None:
    a = np.asarray(photo.convert("RGBA")).copy()
    a[:, :60, 3] = 0  # half transparent, so a writer cannot drop the alpha
    a = a[..., :channels]
    im = Image.open(io.BytesIO(encode(np.ascontiguousarray(a.squeeze()), fmt)))
    assert (im.format, im.mode, im.size) == (pillow, mode, (120, 90))


def test_encode_refuses_an_unknown_format(photo: Image.Image) -> None:
    with pytest.raises(ValueError, match="gif"):
        encode(np.asarray(photo), "gif")


# -- PNG: every colour type and filter, and damage named -----------------------------------------

PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def every_filter_png(pixels: NDArray[np.uint8]) -> bytes:
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
    ihdr = struct.pack(">IIBBBBB", w, h, 8, PNG_COLOUR_TYPES[c], 0, 0, 0)
    idat = zlib.compress(b"".join(rows))
    chunks = [_chunk(b"IHDR", ihdr), _chunk(b"IDAT", idat), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _rechunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """The PNG with its chunk of ``kind`` replaced by ``body`` (with a correct CRC)."""
    out = [data[:8]]
    for k, old in png_chunks(data):
        out.append(_chunk(k, body if k == kind else old))
    return b"".join(out)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_every_png_colour_type_and_filter_gives_the_pixels_written(channels: int) -> None:
    pixels = tiled_photo(333, 121, channels, seed=channels)
    if channels in (2, 4):
        pixels[..., -1] = np.minimum(pixels[..., -1], 254)  # not opaque: the alpha is kept
    data = every_filter_png(pixels)
    with Image.open(io.BytesIO(data)) as im:  # the test's own writer is right
        np.testing.assert_array_equal(np.asarray(im).reshape(pixels.shape), pixels)
    px = load(data)
    expected = np.repeat(pixels[..., :1], 3, axis=2) if channels < 3 else pixels[..., :3]
    np.testing.assert_array_equal(px.rgb, expected)
    if channels in (2, 4):
        assert px.alpha is not None
        np.testing.assert_array_equal(px.alpha, pixels[..., -1])


def test_a_photo_png_in_many_idat_chunks_gives_pillows_pixels() -> None:
    data = (PHOTOS / "plants-1.jpg").read_bytes()  # a 1.5 MP RGBA PNG in 8 KB IDAT chunks
    assert sum(kind == b"IDAT" for kind, _ in png_chunks(data)) > 100
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(load(data).data, np.asarray(im))


def test_a_damaged_png_is_named_truncated_or_corrupt() -> None:
    data = every_filter_png(tiled_photo(200, 150, 4))  # one IDAT chunk
    idat = next(body for kind, body in png_chunks(data) if kind == b"IDAT")
    raw = zlib.decompress(idat)
    # a flipped byte: the chunk's CRC no longer matches
    at = data.index(b"IDAT") + 4 + len(idat) // 2
    with pytest.raises(CorruptImageError):
        load(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    # a filter type that does not exist, behind a correct CRC
    wrong = bytearray(raw)
    wrong[(200 * 4 + 1) * 5] = 9
    with pytest.raises(CorruptImageError):
        load(_rechunk(data, b"IDAT", zlib.compress(bytes(wrong))))
    # rows missing at the end of the stream, behind a correct CRC
    with pytest.raises((CorruptImageError, TruncatedImageError)):
        load(_rechunk(data, b"IDAT", zlib.compress(raw[:-7])))
    # the file cut short in its pixels
    with pytest.raises(TruncatedImageError):
        load(data[: len(data) // 2])
