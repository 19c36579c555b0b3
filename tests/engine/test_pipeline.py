"""``Engine.remove`` and its stages with the real u2netp model: every option a user can ask for.

Inference is the slow part, so each photo is run through the model once (module fixtures) and
the options are applied to that result with ``Engine.finish``, the same call ``remove`` makes.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

from clearbg.engine import Engine, RemoveOptions, compose
from clearbg.engine.imageio import Pixels
from clearbg.engine.pipeline import Cutout, MaskResult
from clearbg.errors import (
    CorruptImageError,
    EmptyImageError,
    InvalidOptionError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedImageError,
    UnknownModelError,
    UnsupportedFormatError,
)
from tests.conftest import PHOTOS

FAST = RemoveOptions(refine=False, foreground=False)  # the model's own mask, scaled


def save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def opened(cut: Cutout) -> tuple[Image.Image, NDArray[np.uint8]]:
    im = Image.open(io.BytesIO(cut.data))
    im.load()
    assert im.size == (cut.width, cut.height)
    return im, np.asarray(im)


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def car() -> Image.Image:
    """car-1.jpg at 240x180: a silver car on a white background."""
    return Image.open(PHOTOS / "car-1.jpg").convert("RGB").resize((240, 180))


@pytest.fixture(scope="module")
def car_png(car: Image.Image) -> bytes:
    return save(car, "PNG")


@pytest.fixture(scope="module")
def car_mask(engine: Engine, car_png: bytes) -> MaskResult:
    return engine.mask(car_png)


@pytest.fixture(scope="module")
def big() -> Image.Image:
    """A 1600x1200 photo: bigger than 720p and than 640 px on its short side."""
    return Image.open(PHOTOS / "car-1.jpg").convert("RGB").resize((1600, 1200))


def big_jpeg(big: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(big, "JPEG", quality=90, exif=exif)


@pytest.fixture(scope="module")
def big_masks(engine: Engine, big: Image.Image) -> dict[int, MaskResult]:
    """The big photo under each EXIF orientation (6: shown as a portrait)."""
    return {o: engine.mask(big_jpeg(big, o)) for o in range(1, 9)}


# -- the default cut-out -----------------------------------------------------------------------


def test_remove_makes_a_transparent_png_of_the_subject(
    engine: Engine, car_png: bytes, car_mask: MaskResult
) -> None:
    cut = engine.remove(car_png)
    im, a = opened(cut)
    assert np.array_equal(a, opened(engine.finish(car_mask))[1])  # remove = mask, then finish
    assert (im.format, im.mode, im.size) == ("PNG", "RGBA", (240, 180))
    assert (cut.media_type, cut.extension, cut.model) == ("image/png", "png", "u2netp")
    assert set(cut.timings) >= {"decode", "inference", "refine", "encode", "total"}
    alpha = a[..., 3]
    # the white background around the car is gone, the car's body is kept
    assert (alpha[:20] == 0).all() and (alpha[-10:] == 0).mean() > 0.9
    assert alpha[100:116, 40:150].min() >= 240
    # hidden pixels carry no colour
    assert (a[alpha == 0, :3] == 0).all()
    # the foreground box holds the subject
    box = cut.foreground
    assert 0 < box.width < 240 and 0 < box.height < 180
    ys, xs = np.nonzero(alpha >= 128)
    assert box.left <= xs.min() and xs.max() < box.left + box.width
    assert box.top <= ys.min() and ys.max() < box.top + box.height


@pytest.mark.parametrize("kind", ["rgb", "opaque rgba", "rgba"])
def test_visible_pixels_keep_the_photos_colour_and_hidden_ones_are_zero(
    engine: Engine, kind: str
) -> None:
    """A subject in the middle, with a hole: only the rectangle around the visible pixels is
    composed (the rest is left zero), so its edges are checked too."""
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (90, 120, 4), dtype=np.uint8)
    rgba[..., 3] = 255 if kind != "rgba" else rng.integers(0, 256, (90, 120), dtype=np.uint8)
    data = rgba[..., :3].copy() if kind == "rgb" else rgba
    pixels = Pixels(data, opaque=kind == "opaque rgba")
    mask = np.zeros((40, 40), np.float32)
    mask[12:30, 9:25] = rng.uniform(0.2, 1.0, (18, 16)).astype(np.float32)
    mask[18:22, 14:18] = 0.0  # a hole
    result = MaskResult(pixels, mask, "u2netp", 0.0, 0.0)
    out = opened(engine.finish(result, FAST))[1]
    alpha = out[..., 3]
    # the alpha is the mask's, as the mask alone gives it (no colour composed there)
    assert np.array_equal(alpha, opened(engine.finish(result, replace(FAST, channels="alpha")))[1])
    seen = alpha > 0
    ys, xs = np.nonzero(seen)
    assert ys.min() > 0 and ys.max() < 89 and xs.min() > 0 and xs.max() < 119  # inside
    assert not seen[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()  # the hole shows
    assert np.array_equal(out[seen, :3], rgba[seen, :3])  # to the box's last row and column
    assert (out[~seen] == 0).all()
    if kind == "rgba":  # the photo's own alpha is kept where it is 0
        assert (alpha[rgba[..., 3] == 0] == 0).all()


def test_a_cut_out_with_nothing_visible_is_all_zero(engine: Engine, car: Image.Image) -> None:
    pixels = Pixels(np.asarray(car))
    nothing = np.zeros((40, 40), np.float32)
    out = opened(engine.finish(MaskResult(pixels, nothing, "u2netp", 0.0, 0.0), FAST))[1]
    assert out.shape == (180, 240, 4) and not out.any()


@pytest.mark.slow
def test_the_reduced_jpeg_decode_gives_the_same_mask_as_the_full_one(
    engine: Engine, big: Image.Image, big_masks: dict[int, MaskResult]
) -> None:
    fast = big_masks[1]  # Engine.mask took the reduced-decode path for this big JPEG
    slow = engine.predict(engine.decode(big_jpeg(big, 1)))
    assert np.array_equal(fast.pixels.rgb, slow.pixels.rgb)
    assert np.abs(fast.mask - slow.mask).mean() < 0.02
    assert iou(fast.mask > 0.5, slow.mask > 0.5) > 0.95


# -- EXIF orientation through the whole pipeline -----------------------------------------------


# what Pillow's exif_transpose does for each EXIF orientation
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("orientation", range(2, 9))
def test_an_oriented_photo_is_cut_out_as_the_viewer_sees_it(
    engine: Engine, big: Image.Image, big_masks: dict[int, MaskResult], orientation: int
) -> None:
    data = big_jpeg(big, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    cut = engine.finish(big_masks[orientation], FAST)
    _, a = opened(cut)
    assert a.shape[:2] == expected.shape[:2]
    turned_size = orientation in (5, 6, 7, 8)
    assert (cut.width, cut.height) == ((1200, 1600) if turned_size else (1600, 1200))
    seen = a[..., 3] > 0
    assert np.array_equal(a[seen, :3], expected[seen])
    # the model saw the photo the right way up too: of the upright cut-out's mask turned every
    # way, the one turned as the EXIF says matches best
    upright = Image.open(io.BytesIO(engine.finish(big_masks[1], FAST).data)).getchannel("A")
    mask = a[..., 3] > 128
    scores = {
        o: iou(mask, np.asarray(upright.transpose(t)) > 128)
        for o, t in TRANSPOSE.items()
        if (o in (5, 6, 7, 8)) == turned_size
    }
    if not turned_size:
        scores[1] = iou(mask, np.asarray(upright) > 128)
    assert max(scores, key=scores.__getitem__) == orientation
    assert scores[orientation] > 0.75


# -- size --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "landscape", "portrait"),
    [
        ("original", (1600, 1200), (1200, 1600)),
        ("720p", (960, 720), (720, 960)),
        ("1080p", (1440, 1080), (1080, 1440)),
        ("4k", (1600, 1200), (1200, 1600)),  # never scaled up
    ],
)
def test_size_fits_the_box_in_the_photos_orientation(
    engine: Engine,
    big_masks: dict[int, MaskResult],
    size: str,
    landscape: tuple[int, int],
    portrait: tuple[int, int],
) -> None:
    for orientation, expected in ((1, landscape), (6, portrait)):
        cut = engine.finish(
            big_masks[orientation], RemoveOptions.parse(size=size, refine=False, foreground=False)
        )
        assert (cut.width, cut.height) == expected


def test_preview_is_about_a_quarter_megapixel(
    engine: Engine, big_masks: dict[int, MaskResult]
) -> None:
    cut = engine.finish(big_masks[1], replace(FAST, size="preview"))
    im, _ = opened(cut)
    assert 240_000 <= im.width * im.height <= 260_000
    assert im.width / im.height == pytest.approx(4 / 3, rel=0.01)


def test_a_small_photo_is_never_scaled_up(engine: Engine, car_mask: MaskResult) -> None:
    for size in ("preview", "720p", "1080p", "4k"):
        cut = engine.finish(
            car_mask, RemoveOptions.parse(size=size, refine=False, foreground=False)
        )
        assert (cut.width, cut.height) == (240, 180)


def test_a_scaled_cut_out_matches_the_full_one_scaled(
    engine: Engine, big_masks: dict[int, MaskResult]
) -> None:
    full = Image.open(io.BytesIO(engine.finish(big_masks[1], FAST).data))
    small = engine.finish(big_masks[1], replace(FAST, size="720p"))
    shrunk = np.asarray(full.getchannel("A").resize((960, 720), Image.Resampling.LANCZOS))
    alpha = np.asarray(opened(small)[0].getchannel("A"))
    assert np.abs(alpha.astype(np.int16) - shrunk).mean() < 2.0


# -- format, background, channels ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "pillow", "mode", "media_type"),
    [
        ("png", "PNG", "RGBA", "image/png"),
        ("jpg", "JPEG", "RGB", "image/jpeg"),
        ("webp", "WEBP", "RGBA", "image/webp"),
    ],
)
def test_format(
    engine: Engine, car_mask: MaskResult, fmt: str, pillow: str, mode: str, media_type: str
) -> None:
    cut = engine.finish(car_mask, RemoveOptions.parse(format=fmt))
    im, a = opened(cut)
    assert (im.format, im.mode, cut.media_type, cut.extension) == (pillow, mode, media_type, fmt)
    if fmt == "jpg":  # no alpha in JPEG: the background is white
        assert a[:20].min() >= 250
    else:
        assert (a[:20, :, 3] == 0).all()


@pytest.mark.parametrize(
    ("colour", "rgb"),
    [("#f00", (255, 0, 0)), ("#0000ff", (0, 0, 255)), ("rebeccapurple", (102, 51, 153))],
)
@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_bg_color_fills_the_background(
    engine: Engine, car_mask: MaskResult, colour: str, rgb: tuple[int, int, int], fmt: str
) -> None:
    cut = engine.finish(car_mask, RemoveOptions.parse(bg_color=colour, format=fmt))
    im, a = opened(cut)
    assert im.mode == "RGB"  # an opaque colour gives an opaque picture
    tolerance = 0 if fmt == "png" else 8  # lossy formats
    corner = a[:15, :30].reshape(-1, 3).astype(np.int16)
    assert np.abs(corner - np.asarray(rgb)).max() <= tolerance
    # the car is still there, over the colour
    assert np.abs(a[100:116, 40:150].astype(np.int16) - np.asarray(rgb)).mean() > 40


def test_a_translucent_bg_color_keeps_its_alpha(engine: Engine, car_mask: MaskResult) -> None:
    cut = engine.finish(car_mask, RemoveOptions.parse(bg_color="#00ff0080"))
    im, a = opened(cut)
    assert im.mode == "RGBA"
    assert (a[:15, :30] == (0, 255, 0, 128)).all()
    assert a[100:116, 40:150, 3].min() >= 240
    # JPEG has no alpha: the colour is opaque there
    _, j = opened(engine.finish(car_mask, RemoveOptions.parse(bg_color="#00ff0080", format="jpg")))
    assert np.abs(j[:15, :30].astype(np.int16) - (0, 255, 0)).max() <= 8


def test_channels_alpha_writes_the_mask_only(engine: Engine, car_mask: MaskResult) -> None:
    rgba = opened(engine.finish(car_mask, RemoveOptions()))[1]
    for fmt in ("png", "jpg", "webp"):
        cut = engine.finish(car_mask, RemoveOptions.parse(channels="alpha", format=fmt))
        im, _ = opened(cut)
        grey = np.asarray(im.convert("L"))
        assert grey.shape == (180, 240)
        if fmt == "png":
            assert im.mode == "L"
            assert np.array_equal(grey, rgba[..., 3])
        else:
            assert np.abs(grey.astype(np.int16) - rgba[..., 3]).mean() < 3


# -- crop ----------------------------------------------------------------------------------------


def subject(alpha: NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """left, top, right, bottom of alpha >= 128."""
    ys, xs = np.nonzero(alpha >= 128)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_crop_keeps_the_whole_subject_and_little_else(engine: Engine, car_mask: MaskResult) -> None:
    full = opened(engine.finish(car_mask, FAST))[1][..., 3]
    cut = engine.finish(car_mask, replace(FAST, crop=True))
    _, a = opened(cut)
    crop = a[..., 3]
    left, top, right, bottom = subject(full)
    assert cut.width < 240 and cut.height < 180
    # every clearly visible pixel of the subject survives the crop
    assert (crop >= 128).sum() == (full >= 128).sum()
    assert cut.width <= (right - left) + 12 and cut.height <= (bottom - top) + 12
    box = cut.foreground
    assert (box.left, box.top) == (0, 0) or box.width == cut.width or box.height == cut.height
    assert box.width <= cut.width and box.height <= cut.height


@pytest.mark.parametrize(("margin", "px"), [("10", 10), ("10px", 10)])
def test_crop_margin_in_pixels(engine: Engine, car_mask: MaskResult, margin: str, px: int) -> None:
    tight = engine.finish(car_mask, replace(FAST, crop=True))
    loose = engine.finish(
        car_mask, RemoveOptions.parse(crop=True, crop_margin=margin, refine=False, foreground=False)
    )
    assert loose.width == tight.width + 2 * px
    assert loose.height == tight.height + 2 * px
    a = opened(loose)[1][..., 3]
    assert (a[:px] < 26).all() and (a[-px:] < 26).all()  # the margin is background


def test_crop_margin_in_percent_of_the_subject(engine: Engine, car_mask: MaskResult) -> None:
    tight = engine.finish(car_mask, replace(FAST, crop=True))
    loose = engine.finish(
        car_mask, RemoveOptions.parse(crop=True, crop_margin="5%", refine=False, foreground=False)
    )
    assert loose.width == tight.width + 2 * round(tight.width * 0.05)
    assert loose.height == tight.height + 2 * round(tight.height * 0.05)


def test_crop_margin_stops_at_the_photos_edge(engine: Engine, car_mask: MaskResult) -> None:
    cut = engine.finish(
        car_mask,
        RemoveOptions.parse(crop=True, crop_margin="200px", refine=False, foreground=False),
    )
    assert (cut.width, cut.height) == (240, 180)


def test_crop_without_a_crop_margin_option_ignores_margin(
    engine: Engine, car_mask: MaskResult
) -> None:
    a = engine.finish(car_mask, RemoveOptions.parse(crop=False, crop_margin="30"))
    assert (a.width, a.height) == (240, 180)


# -- refine and foreground ---------------------------------------------------------------------


def test_refine_changes_only_the_edges(engine: Engine, car_mask: MaskResult) -> None:
    raw = opened(engine.finish(car_mask, RemoveOptions(refine=False, foreground=False)))[1]
    refined = opened(engine.finish(car_mask, RemoveOptions(refine=True, foreground=False)))[1]
    differ = raw[..., 3] != refined[..., 3]
    assert differ.any()
    assert differ.mean() < 0.5
    assert iou(raw[..., 3] >= 128, refined[..., 3] >= 128) > 0.9


def test_without_foreground_estimation_the_photos_colours_are_kept(
    engine: Engine, car_mask: MaskResult, car: Image.Image
) -> None:
    a = opened(engine.finish(car_mask, RemoveOptions(refine=True, foreground=False)))[1]
    seen = a[..., 3] > 0
    assert np.array_equal(a[seen, :3], np.asarray(car)[seen])


@pytest.mark.parametrize("budget", [10_000, compose.REFINE_PIXELS])
@pytest.mark.parametrize("own", ["opaque", "translucent"])
def test_an_rgba_photo_is_refined_as_its_rgb_twin(
    engine: Engine,
    car_mask: MaskResult,
    monkeypatch: pytest.MonkeyPatch,
    own: str,
    budget: int,
) -> None:
    """An RGBA photo's colour, a view into its four-byte pixels, comes out of refinement as its
    RGB twin's, never mixed with its alpha channel: at full size, and over ``REFINE_PIXELS``
    (the car has 43,200 pixels), where the work is done on a reduced copy."""
    monkeypatch.setattr(compose, "REFINE_PIXELS", budget)
    rgb = car_mask.pixels.data
    rng = np.random.default_rng(3)
    fourth = np.full(rgb.shape[:2], 255, np.uint8)
    if own == "translucent":
        fourth = rng.integers(1, 256, rgb.shape[:2], dtype=np.uint8)
    twin = replace(car_mask, pixels=Pixels(np.dstack([rgb, fourth]), opaque=own == "opaque"))
    want = opened(engine.finish(car_mask, RemoveOptions()))[1]
    got = opened(engine.finish(twin, RemoveOptions()))[1]
    if own == "opaque":
        assert np.array_equal(got, want)
    seen = (got[..., 3] > 0) & (want[..., 3] > 0)
    assert seen.mean() > 0.15  # the car: about a fifth of the photo (none of its faint haze)
    assert np.array_equal(got[seen, :3], want[seen, :3])


# -- the photo's own transparency ----------------------------------------------------------------


def test_input_alpha_is_multiplied_into_the_output_alpha(
    engine: Engine, car: Image.Image, car_mask: MaskResult
) -> None:
    own = np.full((180, 240), 255, np.uint8)
    own[:, :80] = 0  # the photo's left third is transparent
    own[:, 80:160] = 128  # its middle third half transparent
    rgba = car.copy()
    rgba.putalpha(Image.fromarray(own))
    cut = engine.remove(save(rgba, "PNG"), FAST)
    alpha = opened(cut)[1][..., 3].astype(np.int32)
    model = opened(engine.finish(car_mask, FAST))[1][..., 3].astype(np.int32)
    assert (alpha[:, :80] == 0).all()
    assert np.abs(alpha[:, 80:160] - (model[:, 80:160] * 128 + 127) // 255).max() <= 1
    assert np.array_equal(alpha[:, 160:], model[:, 160:])


# -- threads -----------------------------------------------------------------------------------


def test_one_engine_serves_many_threads_at_once(engine: Engine, car_mask: MaskResult) -> None:
    asks = [
        RemoveOptions(),
        RemoveOptions(format="webp", crop=True),
        RemoveOptions.parse(bg_color="navy", format="jpg"),
        RemoveOptions(channels="alpha", size="preview"),
    ] * 3
    alone = [engine.finish(car_mask, opts).data for opts in asks]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda opts: engine.finish(car_mask, opts).data, asks))
    # OpenCV splits its float box filters (refinement) by the threads free at the moment, and a
    # running sum started elsewhere rounds differently: a level here and there, never more
    for one, other in zip(alone, together, strict=True):
        a = np.asarray(Image.open(io.BytesIO(one)), dtype=np.int16)
        b = np.asarray(Image.open(io.BytesIO(other)), dtype=np.int16)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() < 0.05


# -- refusals ----------------------------------------------------------------------------------


def _corrupt(data: bytes) -> bytes:
    out = bytearray(data)
    out[400:2000] = bytes(1600)
    return bytes(out)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty", EmptyImageError),
        ("text", NotAnImageError),
        ("truncated", TruncatedImageError),
        ("corrupt", CorruptImageError),
    ],
)
def test_bad_input_fails_with_its_error(
    engine: Engine, car: Image.Image, name: str, error: type[Exception]
) -> None:
    jpeg = save(car, "JPEG")
    image = {"empty": b"", "text": b"just some text", "truncated": jpeg[:2000]}.get(name)
    with pytest.raises(error):
        engine.remove(_corrupt(jpeg) if image is None else image)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_big_truncated_jpeg_fails_in_the_reduced_decode_before_inference(
    engine: Engine, big: Image.Image, progressive: bool
) -> None:
    data = save(big, "JPEG", quality=90, progressive=progressive)
    engine.session()  # loaded already: time only the photo
    t0 = time.perf_counter()
    with pytest.raises(TruncatedImageError):
        engine.remove(data[: len(data) * 2 // 3])
    assert time.perf_counter() - t0 < 0.5  # the model never ran


def test_unsupported_format_and_too_many_pixels(engine: Engine, car: Image.Image) -> None:
    with pytest.raises(UnsupportedFormatError):
        engine.remove(save(car.resize((48, 48)), "ICO"))
    small_limit = Engine(engine.settings.model_copy(update={"max_megapixels": 0.01}))
    try:
        with pytest.raises(TooManyPixelsError, match=r"240x180 = .* MP; the limit is 0\.01 MP"):
            small_limit.remove(save(car, "PNG"))
    finally:
        small_limit.close()


def test_unknown_model_and_bad_options(engine: Engine, car_png: bytes) -> None:
    with pytest.raises(UnknownModelError):
        engine.remove(car_png, RemoveOptions(model="nope"))
    with pytest.raises(InvalidOptionError):
        engine.remove(car_png, RemoveOptions.parse(bg_color="not-a-colour"))


# -- test-time flip ------------------------------------------------------------------------------


@pytest.mark.slow
def test_flip_averages_the_mask_of_the_mirrored_photo(
    engine: Engine, car: Image.Image, car_png: bytes, car_mask: MaskResult
) -> None:
    flipped = engine.mask(car_png, flip=True)
    mirror = engine.mask(save(ImageOps.mirror(car), "PNG"))
    expected = (car_mask.mask + mirror.mask[:, ::-1]) / 2
    assert np.abs(flipped.mask - expected).max() < 1e-5
    assert flipped.session_seconds > car_mask.session_seconds / 4
    cut = engine.remove(car_png, RemoveOptions(flip=True))
    alpha = opened(cut)[1][..., 3]
    plain = opened(engine.finish(car_mask))[1][..., 3]
    assert iou(alpha >= 128, plain >= 128) > 0.9


def test_flip_is_an_option_a_command_line_can_give() -> None:
    assert RemoveOptions.parse(flip=True).flip
    assert not RemoveOptions().flip
