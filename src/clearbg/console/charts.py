"""Charts drawn on the server as SVG: no chart library, no JavaScript, readable by a screen
reader (each chart has a title and a description, and the same figures are in a table below).
Written here because a chart of a few bars and lines is less code than vendoring a library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no data (a line has a gap there)
    css: str  # a class of console.css that colours it


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if value <= step * factor:
            return float(step * factor)
    return value


def _frame(title: str, description: str, labels: Sequence[str], top: float, unit: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
        f'aria-labelledby="{_id(title)}-t {_id(title)}-d">',
        f'<title id="{_id(title)}-t">{escape(title)}</title>',
        f'<desc id="{_id(title)}-d">{escape(description)}</desc>',
    ]
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">'
            f"{top * i / 4:g}{unit}</text>"
        )
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0:
            x = LEFT + plot_w * (i + 0.5) / len(labels)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 14}" text-anchor="middle">'
                f"{escape(label[5:] if len(label) == 10 else label)}</text>"
            )
    return parts


def _id(title: str) -> str:
    return "c-" + "".join(c if c.isalnum() else "-" for c in title.lower())


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><span class="swatch {escape(s.css)}" aria-hidden="true"></span>{escape(s.name)}</li>'
        for s in series
    )
    return f'<ul class="legend">{items}</ul>'


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Bars per label, one segment per series (e.g. requests by status class per day)."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    description = "; ".join(
        f"{label}: " + ", ".join(f"{s.name} {s.values[i] or 0:g}" for s in series)
        for i, label in enumerate(labels)
    )
    parts = _frame(title, description or "no data", labels, top, "")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar = plot_w / max(1, len(labels)) * 0.7
    for i in range(len(labels)):
        x = LEFT + plot_w * (i + 0.5) / len(labels) - bar / 2
        y: float = TOP + plot_h
        for s in series:
            h = plot_h * (s.values[i] or 0) / top
            if h > 0:
                y -= h
                parts.append(
                    f'<rect class="{escape(s.css)}" x="{x:.1f}" y="{y:.1f}" '
                    f'width="{bar:.1f}" height="{h:.1f}"/>'
                )
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(series))


def lines(title: str, labels: Sequence[str], series: Sequence[Series], unit: str) -> Markup:
    """One line per series over the labels (e.g. p50 and p95 latency per day); a label
    without a value breaks the line (a gap, not a zero)."""
    top = _nice_max(max((v for s in series for v in s.values if v is not None), default=0))
    description = "; ".join(
        f"{label}: "
        + ", ".join(
            f"{s.name} {s.values[i]:g}{unit}" if s.values[i] is not None else f"{s.name} no data"
            for s in series
        )
        for i, label in enumerate(labels)
    )
    parts = _frame(title, description or "no data", labels, top, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for s in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(
                (LEFT + plot_w * (i + 0.5) / len(labels), TOP + plot_h - plot_h * v / top)
            )
        for points in (r for r in runs if r):
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline class="{escape(s.css)}" fill="none" points="{path}"/>')
            parts.extend(
                f'<circle class="{escape(s.css)}" cx="{x:.1f}" cy="{y:.1f}" r="3"/>'
                for x, y in points
            )
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(series))
