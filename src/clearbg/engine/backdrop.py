"""After the cut-out: the subject moved and scaled on its canvas (``Placement``) and the canvas
laid over a background photo or colour, then encoded. remove.bg's ``scale``, ``position``,
``bg_image_url`` and ``bg_image_file`` are these; the engine's own cut-out is unchanged.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clearbg.engine.compose import Box, subject_box
from clearbg.engine.imageio import Pixels, encode
from clearbg.errors import InvalidOptionError

__all__ = ["Placement", "compose_over", "parse_percent", "parse_position", "parse_region"]


@dataclass(frozen=True)
class Placement:
    """``region``: only what lies in it (left, top, right, bottom as 0..1 of the image) may
    be foreground, the rest is made transparent (None: all of it); ``scale``: the subject's
    longer side as a share of the canvas (None: as it is); ``position``: where the subject
    goes, 0..1 on each axis (0 left/top, 1 right/bottom; None: where it is)."""

    scale: float | None = None
    position: tuple[float, float] | None = None
    region: tuple[float, float, float, float] | None = None

    @property
    def moves(self) -> bool:
        return self.scale is not None or self.position is not None or self.region is not None


def parse_percent(name: str, text: str, low: float = 0.0) -> float:
    """``"80%"`` -> 0.8, between ``low`` and 1."""
    raw = text.strip()
    try:
        value = float(raw.removesuffix("%")) / 100
    except ValueError:
        raise InvalidOptionError(name, f"{raw!r} is not a percentage like 80%") from None
    if not raw.endswith("%") or not math.isfinite(value) or not low <= value <= 1:
        raise InvalidOptionError(name, f"{raw!r}: must be from {low:.0%} to 100%")
    return value


def parse_position(text: str) -> tuple[float, float]:
    """``"center"``, ``"30%"`` (both axes) or ``"30% 70%"`` (horizontal, vertical)."""
    raw = text.strip().lower()
    if raw == "center":
        return 0.5, 0.5
    parts = raw.split()
    if len(parts) not in (1, 2):
        raise InvalidOptionError("position", f"{raw!r}: give center, 'x%' or 'x% y%'")
    values = [parse_percent("position", p) for p in parts]
    return values[0], values[-1]


def parse_region(text: str, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """remove.bg's ``roi``, ``"x1 y1 x2 y2"`` in px or % of the photo (``size``), as 0..1."""
    parts = text.split()
    if len(parts) != 4:
        raise InvalidOptionError("roi", f"{text!r}: give four values, x1 y1 x2 y2, in px or %")
    values = []
    for n, part in enumerate(parts):
        if part.endswith("%"):
            values.append(parse_percent("roi", part))
            continue
        try:
            px = float(part.removesuffix("px"))
        except ValueError:
            raise InvalidOptionError("roi", f"{part!r} is not px or %") from None
        values.append(min(1.0, max(0.0, px / size[n % 2])))
    left, top, right, bottom = values
    if right <= left or bottom <= top:
        raise InvalidOptionError("roi", f"{text!r}: x2 must exceed x1 and y2 y1")
    return left, top, right, bottom


def _placed(rgba: NDArray[np.uint8], placement: Placement) -> NDArray[np.uint8]:
    """The subject (where alpha > 0) cut out, scaled and put back on an empty canvas."""
    if not placement.moves:
        return rgba
    h, w = rgba.shape[:2]
    if placement.region is not None:
        left, top, right, bottom = placement.region
        keep = np.zeros((h, w), dtype=bool)
        keep[round(top * h) : round(bottom * h), round(left * w) : round(right * w)] = True
        rgba = rgba.copy()
        rgba[~keep, 3] = 0
        if placement.scale is None and placement.position is None:
            return rgba
    rows = np.flatnonzero(rgba[:, :, 3].max(axis=1))
    cols = np.flatnonzero(rgba[:, :, 3].max(axis=0))
    if len(rows) == 0:
        return rgba
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    subject = Image.fromarray(np.ascontiguousarray(rgba[top:bottom, left:right]))
    if placement.scale is not None:
        factor = placement.scale * min(w / subject.width, h / subject.height)
        size = (max(1, round(subject.width * factor)), max(1, round(subject.height * factor)))
        subject = subject.resize(size, Image.Resampling.LANCZOS)
    x, y = placement.position or (0.5, 0.5)  # a scaled subject is centred unless placed
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    canvas.alpha_composite(
        subject, (round((w - subject.width) * x), round((h - subject.height) * y))
    )
    return np.asarray(canvas)


def _cover(background: Pixels, size: tuple[int, int]) -> Image.Image:
    """The background photo scaled to cover ``size`` and centred (its overflow cut off). The
    overflow is cut in the photo's own pixels first, so a very long photo is never scaled up
    whole."""
    bg = Image.fromarray(np.ascontiguousarray(background.rgb))
    w, h = size
    factor = max(w / bg.width, h / bg.height)
    cw, ch = min(bg.width, w / factor), min(bg.height, h / factor)  # what ends up on the canvas
    left, top = (bg.width - cw) / 2, (bg.height - ch) / 2
    return bg.resize(
        (w, h), Image.Resampling.LANCZOS, box=(left, top, left + cw, top + ch)
    ).convert("RGBA")


def compose_over(
    cutout_png: bytes,
    placement: Placement,
    background: Pixels | None,
    bg_color: tuple[int, int, int, int] | None,
    fmt: str,
    quality: int = 90,
) -> tuple[bytes, int, int, Box]:
    """An RGBA cut-out (PNG) placed, laid over the background photo or colour (or nothing)
    and encoded as ``fmt``: the bytes, the size and the subject's box where it now lies."""
    with Image.open(io.BytesIO(cutout_png)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    h, w = rgba.shape[:2]
    placed = _placed(rgba, placement)
    front = Image.fromarray(placed)
    if background is not None:
        canvas = _cover(background, (w, h))
    else:  # a JPEG has no transparency: white unless a colour is given
        fill = bg_color or ((255, 255, 255, 255) if fmt == "jpg" else (0, 0, 0, 0))
        canvas = Image.new("RGBA", (w, h), fill)
    canvas.alpha_composite(front)
    out = np.asarray(canvas if fmt != "jpg" else canvas.convert("RGB"))
    return encode(out, fmt, quality), w, h, subject_box(placed[:, :, 3])
