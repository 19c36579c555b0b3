"""A photo's colour profile (a phone's Display P3, Adobe RGB) is kept in its cut-out."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from clearbg.engine import Engine, RemoveOptions
from tests.conftest import PHOTOS


def _rgb_profile() -> bytes:
    """A real RGB ICC profile (Little CMS's sRGB), made here rather than committed."""
    profile = ImageCms.createProfile("sRGB")
    data = ImageCms.ImageCmsProfile(profile).tobytes()
    assert data[16:20] == b"RGB "
    return data


def _photo(fmt: str, icc: bytes | None, mode: str = "RGB") -> bytes:
    im = Image.open(PHOTOS / "car-1.jpg").convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


@pytest.mark.parametrize("source", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("out", ["png", "jpg", "webp"])
def test_the_photos_rgb_profile_is_embedded_in_the_cut_out(
    engine: Engine, source: str, out: str
) -> None:
    icc = _rgb_profile()
    cut = engine.remove(_photo(source, icc), RemoveOptions(format=out))  # type: ignore[arg-type]
    got = Image.open(io.BytesIO(cut.data))
    got.load()
    assert got.info.get("icc_profile") == icc


def test_no_profile_in_gives_none_out_and_a_mask_never_gets_one(engine: Engine) -> None:
    plain = engine.remove(_photo("JPEG", None))
    assert "icc_profile" not in Image.open(io.BytesIO(plain.data)).info
    mask = engine.remove(_photo("PNG", _rgb_profile()), RemoveOptions(channels="alpha"))
    assert "icc_profile" not in Image.open(io.BytesIO(mask.data)).info


def test_a_cmyk_profile_is_dropped_with_the_cmyk(engine: Engine) -> None:
    """The pixels are converted to RGB, so a CMYK profile would describe the wrong colours."""
    fake = bytearray(_rgb_profile())
    fake[16:20] = b"CMYK"
    cut = engine.remove(_photo("JPEG", bytes(fake), mode="CMYK"))
    assert "icc_profile" not in Image.open(io.BytesIO(cut.data)).info
