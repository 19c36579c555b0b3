"""RemoveOptions: every option parsed from the strings a user types, or refused by name."""

from __future__ import annotations

import pytest

from clearbg.engine.options import Margin, RemoveOptions, fit_size, parse_color, parse_margin
from clearbg.errors import InvalidOptionError


@pytest.mark.parametrize(
    ("size", "width", "height", "expected"),
    [
        ("original", 4000, 3000, (4000, 3000)),
        ("720p", 4000, 3000, (960, 720)),
        ("720p", 3000, 4000, (720, 960)),  # portrait fits 720x1280, not 1280x720
        ("720p", 1080, 4000, (346, 1280)),
        ("1080p", 4000, 2000, (1920, 960)),
        ("1080p", 1000, 4000, (480, 1920)),
        ("4k", 8000, 6000, (2880, 2160)),
        ("4k", 1000, 800, (1000, 800)),  # never scaled up
        ("720p", 600, 400, (600, 400)),
        ("preview", 400, 300, (400, 300)),
    ],
)
def test_fit_size_scales_down_in_the_photos_own_orientation(
    size: str, width: int, height: int, expected: tuple[int, int]
) -> None:
    assert fit_size(width, height, size) == expected


def test_fit_size_refuses_an_unknown_size() -> None:
    with pytest.raises(InvalidOptionError, match="size"):
        fit_size(100, 100, "8k")


@pytest.mark.parametrize(("width", "height"), [(4000, 3000), (6000, 1000), (1000, 6000)])
def test_preview_is_about_a_quarter_megapixel_with_the_same_shape(width: int, height: int) -> None:
    w, h = fit_size(width, height, "preview")
    assert 245_000 <= w * h <= 255_000
    assert w / h == pytest.approx(width / height, rel=0.01)


@pytest.mark.parametrize(
    ("text", "rgba"),
    [
        ("#f00", (255, 0, 0, 255)),
        ("#F008", (255, 0, 0, 136)),
        ("#00ff00", (0, 255, 0, 255)),
        ("#0000ff80", (0, 0, 255, 128)),
        ("0000ff", (0, 0, 255, 255)),  # hex without '#', as remove.bg accepts
        ("white", (255, 255, 255, 255)),
        ("RebeccaPurple", (102, 51, 153, 255)),
        (" teal ", (0, 128, 128, 255)),
    ],
)
def test_parse_color_accepts_hex_and_css_names(text: str, rgba: tuple[int, int, int, int]) -> None:
    assert parse_color(text) == rgba


@pytest.mark.parametrize("text", ["notacolour", "#12", "#12345", "#gggggg", "rgb(1,2)", "#"])
def test_parse_color_refuses_what_is_not_a_colour(text: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        parse_color(text)
    assert info.value.option == "bg_color"
    assert info.value.status == 400
    assert info.value.code == "invalid_option"


@pytest.mark.parametrize(
    ("text", "margin", "pixels_of_200"),
    [
        ("30", Margin(30, "px"), 30),
        ("30px", Margin(30, "px"), 30),
        (" 12.6 PX ", Margin(12.6, "px"), 13),
        ("10%", Margin(10, "%"), 20),
        ("0", Margin(0, "px"), 0),
        ("100%", Margin(100, "%"), 200),
    ],
)
def test_parse_margin_in_pixels_or_percent_of_the_subject(
    text: str, margin: Margin, pixels_of_200: int
) -> None:
    parsed = parse_margin(text)
    assert parsed == margin
    assert parsed.pixels(200) == pixels_of_200


@pytest.mark.parametrize("text", ["-5", "ten", "101%", "nan", "inf", "5em", ""])
def test_parse_margin_refuses_bad_values(text: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        parse_margin(text)
    assert info.value.option == "crop_margin"


def test_parse_gives_the_defaults_when_nothing_is_asked() -> None:
    opts = RemoveOptions.parse()
    assert opts == RemoveOptions()
    assert (opts.size, opts.format, opts.channels, opts.bg_color) == (
        "original",
        "png",
        "rgba",
        None,
    )
    assert (opts.crop, opts.refine, opts.foreground, opts.model) == (False, True, True, None)


def test_parse_reads_every_option_from_strings() -> None:
    opts = RemoveOptions.parse(
        model="u2netp",
        size="720P",
        format="JPEG",
        bg_color="#102030",
        channels="Alpha",
        crop="true",
        crop_margin="5%",
        refine=False,
        foreground=False,
    )
    assert opts == RemoveOptions(
        model="u2netp",
        size="720p",
        format="jpg",
        bg_color=(16, 32, 48, 255),
        channels="alpha",
        crop=True,
        crop_margin=Margin(5, "%"),
        refine=False,
        foreground=False,
    )


@pytest.mark.parametrize(("alias", "size"), [("full", "original"), ("auto", "original")])
def test_size_aliases(alias: str, size: str) -> None:
    assert RemoveOptions.parse(size=alias).size == size


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("size", {"size": "8k"}),
        ("format", {"format": "gif"}),
        ("channels", {"channels": "rgb"}),
        ("crop", {"crop": "maybe"}),
        ("bg_color", {"bg_color": "blurple"}),
        ("crop_margin", {"crop_margin": "-1px"}),
    ],
)
def test_parse_refuses_each_bad_option_by_name(field: str, kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidOptionError) as info:
        RemoveOptions.parse(**kwargs)  # type: ignore[arg-type]
    assert info.value.option == field
    assert str(info.value).startswith(f"{field}: ")


def test_the_dataclass_validates_too() -> None:
    with pytest.raises(InvalidOptionError):
        RemoveOptions(size="huge")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError):
        RemoveOptions(quality=0)
    with pytest.raises(InvalidOptionError):
        RemoveOptions(format="bmp")  # type: ignore[arg-type]


def test_the_best_pipeline_is_one_option_and_runs_isnet_with_u2net() -> None:
    best = RemoveOptions.parse(pipeline="Best")
    assert (best.pipeline, best.model, best.partner, best.flip) == ("best", "isnet", "u2net", False)
    assert RemoveOptions.parse(pipeline="best", flip=True).flip
    assert RemoveOptions.parse(pipeline="best", model="isnet") == best
    assert RemoveOptions().partner is None and RemoveOptions.parse().pipeline == "default"


@pytest.mark.parametrize(
    "kwargs", [{"pipeline": "fastest"}, {"pipeline": "best", "model": "u2netp"}]
)
def test_a_pipeline_that_does_not_exist_or_with_another_model_is_refused(
    kwargs: dict[str, str],
) -> None:
    with pytest.raises(InvalidOptionError) as info:
        RemoveOptions.parse(**kwargs)  # type: ignore[arg-type]
    assert info.value.option == "pipeline"
