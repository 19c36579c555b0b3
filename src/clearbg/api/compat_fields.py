"""remove.bg's v1.0 request fields translated to ClearBG's: ``RemoveOptions`` for the engine,
a ``Placement`` for ``scale``/``position``, and the output format. Fields ClearBG cannot honour
are accepted at remove.bg's default value (which asks for nothing) and refused otherwise.

Sizes keep remove.bg's meanings (https://www.npmjs.com/package/remove.bg, the remove.bg API
reference it quotes): preview = small = regular up to 0.25 MP, medium up to 1.5 MP, hd up to
4 MP, full = 4k = auto the photo's own resolution (within ClearBG's pixel limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clearbg.engine import RemoveOptions
from clearbg.engine.backdrop import Placement, parse_percent, parse_position, parse_region
from clearbg.engine.options import parse_color
from clearbg.errors import InvalidOptionError

__all__ = ["SIZES", "Translated", "translate"]

SIZES = {
    "preview": "preview",
    "small": "preview",
    "regular": "preview",
    "medium": "medium",
    "hd": "hd",
    "full": "original",
    "4k": "original",
    "auto": "original",
}
_FORMATS = ("auto", "png", "jpg", "jpeg", "webp")
# remove.bg fields without a ClearBG counterpart: the values that ask for nothing
_DEFAULTS_ONLY = {
    "type": ("auto",),
    "type_level": ("1", "none", "latest"),
    "add_shadow": ("false", "0"),
    "semitransparency": ("true", "1"),
}
WHOLE = "0% 0% 100% 100%"


@dataclass(frozen=True)
class Translated:
    """What a remove.bg request asks of ClearBG: the engine's options (always an RGBA PNG
    when the result is composed afterwards), the placement and the final format."""

    options: RemoveOptions
    placement: Placement
    format: str  # png | jpg | webp
    bg_color: tuple[int, int, int, int] | None
    composed: bool  # scale, position or a background photo: composed after the engine


def _flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InvalidOptionError(name, f"{value!r} is not true or false")


def _refuse_unsupported(fields: Mapping[str, str]) -> None:
    for name, accepted in _DEFAULTS_ONLY.items():
        value = fields.get(name)
        if value is None:
            continue
        norm = " ".join(value.strip().lower().split())
        if norm not in accepted:
            raise InvalidOptionError(
                name,
                f"{value!r} is not supported by ClearBG; leave it out or send {accepted[0]!r}",
            )


def translate(
    fields: Mapping[str, str], has_bg_image: bool, photo_size: tuple[int, int]
) -> Translated:
    """The ClearBG request for remove.bg's ``fields`` (text values; files are apart) on a
    photo of ``photo_size`` (as seen, EXIF orientation applied)."""
    _refuse_unsupported(fields)
    size = fields.get("size", "preview").strip().lower() or "preview"
    if size not in SIZES:
        raise InvalidOptionError("size", f"{size!r}: must be one of {', '.join(SIZES)}")
    fmt = fields.get("format", "auto").strip().lower() or "auto"
    if fmt == "zip":
        raise InvalidOptionError("format", "zip is not supported by ClearBG; use png or jpg")
    if fmt not in _FORMATS:
        raise InvalidOptionError("format", f"{fmt!r}: must be auto, png or jpg")
    bg_color = parse_color(fields["bg_color"]) if fields.get("bg_color") else None
    if bg_color is not None and has_bg_image:
        raise InvalidOptionError("bg_color", "send bg_color or a background image, not both")
    if fmt == "auto":  # remove.bg: PNG when the result has transparency, else JPEG
        opaque = has_bg_image or (bg_color is not None and bg_color[3] == 255)
        fmt = "jpg" if opaque else "png"
    fmt = "jpg" if fmt == "jpeg" else fmt
    scale_text = fields.get("scale", "original").strip().lower() or "original"
    scale = None if scale_text == "original" else parse_percent("scale", scale_text, 0.1)
    position_text = fields.get("position", "original").strip().lower() or "original"
    position = None if position_text == "original" else parse_position(position_text)
    roi = " ".join(fields.get("roi", WHOLE).split()) or WHOLE
    region = None if roi == WHOLE else parse_region(roi, photo_size)
    crop = _flag("crop", fields["crop"]) if "crop" in fields else False
    if region is not None and crop:
        raise InvalidOptionError("roi", "a region of interest cannot be combined with crop")
    placement = Placement(scale, position, region)
    composed = placement.moves or has_bg_image
    channels = fields.get("channels", "rgba").strip().lower() or "rgba"
    if composed and channels != "rgba":
        raise InvalidOptionError("channels", "alpha cannot be placed or laid over a photo")
    options = RemoveOptions.from_fields(
        {
            "size": SIZES[size],
            # composed afterwards: the engine gives the plain RGBA cut-out
            "format": "png" if composed else fmt,
            "bg_color": None if composed else fields.get("bg_color") or None,
            "channels": channels,
            "crop": crop,
            "crop_margin": fields.get("crop_margin") or None,
        }
    )
    return Translated(options, placement, fmt, bg_color, composed)
