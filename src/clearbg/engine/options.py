"""What a caller may ask of a cut-out: ``RemoveOptions``, validated with clear errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from PIL import ImageColor

from clearbg.errors import InvalidOptionError

__all__ = [
    "BEST_MODEL",
    "BEST_PARTNER",
    "SIZES",
    "Margin",
    "RemoveOptions",
    "fit_size",
    "parse_color",
    "parse_margin",
]

Size = Literal["original", "preview", "720p", "1080p", "4k"]
Format = Literal["png", "jpg", "webp"]
Channels = Literal["rgba", "alpha"]
Pipeline = Literal["default", "best"]

# The best pipeline: the masks of isnet and u2net averaged, fused with isnet's companion and
# refined (docs/quality.md has its figures and cost); ``flip`` mirrors both models' passes.
BEST_MODEL = "isnet"
BEST_PARTNER = "u2net"

SIZES: dict[str, tuple[int, int] | None] = {
    "original": None,
    "preview": None,  # an area limit, not a box: about 0.25 MP
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "4k": (3840, 2160),
}
PREVIEW_PIXELS = 250_000
_FORMAT_ALIASES = {"jpeg": "jpg", "png": "png", "jpg": "jpg", "webp": "webp"}


@dataclass(frozen=True)
class Margin:
    value: float = 0.0
    unit: Literal["px", "%"] = "px"

    def pixels(self, subject: int) -> int:
        return round(self.value * subject / 100) if self.unit == "%" else round(self.value)


def parse_margin(text: str | float | Margin) -> Margin:
    """``"30"``, ``"30px"`` or ``"10%"`` (of the subject's size on each axis); never negative."""
    if isinstance(text, Margin):
        return text
    raw = str(text).strip().lower()
    unit: Literal["px", "%"] = "%" if raw.endswith("%") else "px"
    number = raw.removesuffix("%").removesuffix("px").strip()
    try:
        value = float(number)
    except ValueError:
        raise InvalidOptionError("crop_margin", f"{text!r} is not a number of px or %") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidOptionError("crop_margin", "must be zero or more")
    if unit == "%" and value > 100:
        raise InvalidOptionError("crop_margin", "at most 100%")
    return Margin(value, unit)


def parse_color(text: str) -> tuple[int, int, int, int]:
    """``#RGB``, ``#RGBA``, ``#RRGGBB``, ``#RRGGBBAA`` or a CSS colour name -> RGBA."""
    raw = text.strip()
    if raw and all(c in "0123456789abcdefABCDEF" for c in raw) and len(raw) in (3, 4, 6, 8):
        raw = "#" + raw  # remove.bg accepts hex without '#'
    try:
        rgba = ImageColor.getcolor(raw, "RGBA")
    except ValueError:
        raise InvalidOptionError(
            "bg_color", f"{text!r} is not a colour (#RGB, #RRGGBB, #RRGGBBAA or a CSS name)"
        ) from None
    if not isinstance(rgba, tuple) or len(rgba) != 4:  # "RGBA" always gives four values
        raise InvalidOptionError("bg_color", f"{text!r} is not an RGBA colour")
    r, g, b, a = rgba
    return (r, g, b, a)


def fit_size(width: int, height: int, size: str) -> tuple[int, int]:
    """The output size for ``size``: scaled down, never up, keeping the aspect ratio."""
    if size == "original":
        return width, height
    if size == "preview":
        scale = min(1.0, math.sqrt(PREVIEW_PIXELS / (width * height)))
    else:
        box = SIZES.get(size)
        if box is None:
            raise InvalidOptionError("size", f"{size!r}: must be one of {', '.join(SIZES)}")
        bw, bh = box if width >= height else (box[1], box[0])
        scale = min(1.0, bw / width, bh / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class RemoveOptions:
    """Options of one cut-out. Build from strings with ``RemoveOptions.parse``."""

    model: str | None = None  # None: the engine's default model
    size: Size = "original"
    format: Format = "png"
    bg_color: tuple[int, int, int, int] | None = None
    channels: Channels = "rgba"
    crop: bool = False
    crop_margin: Margin = field(default_factory=Margin)
    combine: bool = True  # fuse the model's mask with its companion model's (see pipeline.fuse)
    refine: bool = True  # matte the band where the mask is unsure against the photo (hair, fur)
    flip: bool = False  # also run the model on the mirrored photo and average (2x inference)
    foreground: bool = True  # estimate the foreground colour in the soft band
    quality: int = 90  # JPEG and WebP
    # "best": isnet's mask averaged with u2net's, then as the default (about 3x u2net's time)
    pipeline: Pipeline = "default"

    def __post_init__(self) -> None:
        if self.pipeline not in get_args(Pipeline):
            raise InvalidOptionError("pipeline", "must be default or best")
        if self.pipeline == "best":
            if self.model not in (None, BEST_MODEL):
                raise InvalidOptionError(
                    "pipeline", f"best runs {BEST_MODEL} with {BEST_PARTNER}; leave the model unset"
                )
            object.__setattr__(self, "model", BEST_MODEL)  # frozen: set once, here
        if self.size not in SIZES:
            raise InvalidOptionError("size", f"must be one of {', '.join(SIZES)}")
        if self.format not in get_args(Format):
            raise InvalidOptionError("format", "must be png, jpg or webp")
        if self.channels not in get_args(Channels):
            raise InvalidOptionError("channels", "must be rgba or alpha")
        if not 1 <= self.quality <= 100:
            raise InvalidOptionError("quality", "must be between 1 and 100")

    @property
    def partner(self) -> str | None:
        """The model whose mask is averaged with the model's (the best pipeline's u2net)."""
        return BEST_PARTNER if self.pipeline == "best" else None

    @classmethod
    def parse(
        cls,
        *,
        model: str | None = None,
        size: str | None = None,
        format: str | None = None,
        bg_color: str | None = None,
        channels: str | None = None,
        crop: bool | str | None = None,
        crop_margin: str | None = None,
        refine: bool = True,
        foreground: bool = True,
        flip: bool | str | None = False,
        combine: bool = True,
        pipeline: str | None = None,
    ) -> RemoveOptions:
        """Options from the strings a form, a query or a command line carries."""
        fmt = _FORMAT_ALIASES.get((format or "png").strip().lower())
        if fmt is None:
            raise InvalidOptionError("format", f"{format!r}: must be png, jpg or webp")
        size_name = (size or "original").strip().lower()
        if size_name in ("full", "auto"):
            size_name = "original"
        if size_name not in SIZES:
            raise InvalidOptionError("size", f"{size!r}: must be one of {', '.join(SIZES)}")
        chan = (channels or "rgba").strip().lower()
        chosen = (pipeline or "default").strip().lower()
        if chosen not in get_args(Pipeline):
            raise InvalidOptionError("pipeline", f"{pipeline!r}: must be default or best")
        if chan not in get_args(Channels):
            raise InvalidOptionError("channels", f"{channels!r}: must be rgba or alpha")
        return cls(
            model=(model or None),
            size=size_name,  # type: ignore[arg-type]
            format=fmt,  # type: ignore[arg-type]
            bg_color=parse_color(bg_color) if bg_color else None,
            channels=chan,  # type: ignore[arg-type]
            crop=_parse_bool("crop", crop),
            crop_margin=parse_margin(crop_margin) if crop_margin else Margin(),
            refine=refine,
            foreground=foreground,
            flip=_parse_bool("flip", flip),
            combine=combine,
            pipeline=chosen,  # type: ignore[arg-type]
        )


def _parse_bool(name: str, value: bool | str | None) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise InvalidOptionError(name, f"{value!r} is not true or false")
