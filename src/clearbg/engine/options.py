"""What a caller may ask of a cut-out: ``RemoveOptions``, validated with clear errors."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
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
    "shown",
]

Size = Literal["original", "preview", "medium", "hd", "720p", "1080p", "4k"]
Format = Literal["png", "jpg", "webp"]
Channels = Literal["rgba", "alpha"]
Pipeline = Literal["default", "best"]

# The best pipeline: the masks of isnet and u2net averaged, fused with isnet's companion and
# matted, the matte anchored to their decision (``matting.anchor``; docs/quality.md has
# its figures and cost); ``flip`` mirrors both models' passes.
BEST_MODEL = "isnet"
BEST_PARTNER = "u2net"

SIZES: dict[str, tuple[int, int] | None] = {
    "original": None,
    "preview": None,  # an area limit, not a box: about 0.25 MP
    "medium": None,  # 1.5 MP, remove.bg's medium
    "hd": None,  # 4 MP, remove.bg's hd
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "4k": (3840, 2160),
}
PREVIEW_PIXELS = 250_000
AREA_LIMITS = {"preview": PREVIEW_PIXELS, "medium": 1_500_000, "hd": 4_000_000}
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
        raise InvalidOptionError(
            "crop_margin", f"{shown(text)} is not a number of px or %"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidOptionError("crop_margin", "must be zero or more")
    if unit == "%" and value > 100:
        raise InvalidOptionError("crop_margin", "at most 100%")
    return Margin(value, unit)


def parse_color(text: str) -> tuple[int, int, int, int]:
    """``#RGB``, ``#RGBA``, ``#RRGGBB``, ``#RRGGBBAA`` or a CSS colour name -> RGBA."""
    raw = text.strip()
    _check_components(raw, text)
    if raw and all(c in "0123456789abcdefABCDEF" for c in raw) and len(raw) in (3, 4, 6, 8):
        raw = "#" + raw  # remove.bg accepts hex without '#'
    try:
        rgba = ImageColor.getcolor(raw, "RGBA")
    except ValueError:
        raise InvalidOptionError(
            "bg_color", f"{shown(text)} is not a colour (#RGB, #RRGGBB, #RRGGBBAA or a CSS name)"
        ) from None
    if not isinstance(rgba, tuple) or len(rgba) != 4:  # "RGBA" always gives four values
        raise InvalidOptionError("bg_color", f"{shown(text)} is not an RGBA colour")
    r, g, b, a = rgba
    return (r, g, b, a)


_FUNCTION = re.compile(r"^(rgba?|hs[lvb])\((.*)\)$", re.IGNORECASE)


def _check_components(raw: str, text: str) -> None:
    """Pillow clips ``rgb(300,0,0)`` to red; a component out of its range is refused."""
    match = _FUNCTION.match(raw)
    if match is None:
        return
    kind = match.group(1).lower()
    for n, part in enumerate(p.strip() for p in re.split(r"[,\s/]+", match.group(2).strip())):
        number = part.removesuffix("%")
        try:
            value = float(number)
        except ValueError:
            continue  # Pillow says what is wrong with it
        hue = kind.startswith("hs") and n == 0
        top = 100.0 if part.endswith("%") else 360.0 if hue else 255.0
        if not 0 <= value <= top:
            raise InvalidOptionError("bg_color", f"{shown(text)}: {part} is out of range")


def fit_size(width: int, height: int, size: str) -> tuple[int, int]:
    """The output size for ``size``: scaled down, never up, keeping the aspect ratio."""
    if size == "original":
        return width, height
    if size in AREA_LIMITS:
        scale = min(1.0, math.sqrt(AREA_LIMITS[size] / (width * height)))
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
        """Options from keyword arguments (Python callers); ``from_fields`` does the work."""
        return cls.from_fields(
            {
                "model": model,
                "size": size,
                "format": format,
                "bg_color": bg_color,
                "channels": channels,
                "crop": crop,
                "crop_margin": crop_margin,
                "refine": refine,
                "foreground": foreground,
                "flip": flip,
                "combine": combine,
                "pipeline": pipeline,
            }
        )

    @classmethod
    def from_fields(cls, given: Mapping[str, FieldValue]) -> RemoveOptions:
        """Options from the values a form, a command line or a stored job carries, by field
        name; a field that is absent (or ``None``) keeps its default, one that is present but
        empty or wrong is an ``InvalidOptionError`` naming it. Other names are ignored."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = given.get(f.name)
            if raw is None:
                continue
            if isinstance(raw, str) and not raw.strip():
                raise InvalidOptionError(f.name, "is empty; leave it out for the default")
            values[f.name] = _PARSERS.get(f.name, _parse_bool)(f.name, raw)
        return cls(**values)  # type: ignore[arg-type]

    def to_fields(self) -> dict[str, str]:
        """Every option as the text ``from_fields`` reads back (a stored job keeps them all)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = _text(value)
        return out


FieldValue = str | bool | int | None


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Margin):
        return f"{value.value:g}{value.unit}"
    if isinstance(value, tuple):
        return "#" + "".join(f"{c:02x}" for c in value)
    return str(value)


def shown(value: object, limit: int = 64) -> str:
    """``repr(value)`` for an error message, cut at ``limit`` characters (a caller's 10 KB
    value is not echoed back whole)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _choice(aliases: Mapping[str, str]) -> Callable[[str, FieldValue], str]:
    def parse(name: str, raw: FieldValue) -> str:
        found = aliases.get(str(raw).strip().lower())
        if found is None:
            choices = ", ".join(sorted(set(aliases.values())))
            raise InvalidOptionError(name, f"{shown(raw)}: must be one of {choices}")
        return found

    return parse


def _model(name: str, raw: FieldValue) -> str:
    return str(raw).strip()


def _color(name: str, raw: FieldValue) -> tuple[int, int, int, int]:
    return parse_color(str(raw))


def _margin(name: str, raw: FieldValue) -> Margin:
    return parse_margin(str(raw))


def _int(name: str, raw: FieldValue) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        raise InvalidOptionError(name, f"{shown(raw)} is not a whole number") from None


_PARSERS: dict[str, Callable[[str, FieldValue], object]] = {
    "model": _model,
    "size": _choice({**{s: s for s in SIZES}, "full": "original", "auto": "original"}),
    "format": _choice(_FORMAT_ALIASES),
    "bg_color": _color,
    "channels": _choice({c: c for c in get_args(Channels)}),
    "crop_margin": _margin,
    "quality": _int,
    "pipeline": _choice({p: p for p in get_args(Pipeline)}),
}  # every other field is a bool


def _parse_bool(name: str, value: FieldValue) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidOptionError(name, f"{shown(value)} is not true or false")
