"""The server-drawn SVG charts: scaled to their data, labelled, and escaped."""

from __future__ import annotations

from clearbg.console import charts


def test_stacked_bars_scale_to_the_largest_day_and_describe_every_value() -> None:
    svg = charts.stacked_bars(
        "Requests",
        ["2026-11-20", "2026-11-21"],
        [charts.Series("2xx", [3, 7], "s2xx"), charts.Series("4xx", [1, 0], "s4xx")],
    )
    assert svg.count("<rect") == 3  # zero-height segments are not drawn
    assert ">10<" in svg  # the axis tops out at a round number above 7
    assert "2026-11-21: 2xx 7, 4xx 0" in svg  # the description a screen reader reads
    assert "11-20" in svg


def test_lines_with_no_traffic_and_hostile_names_are_safe() -> None:
    svg = charts.lines("p50 <b>", ["2026-11-21"], [charts.Series("<script>", [0], "p50")], " ms")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<b>" not in svg
    assert "<polyline" in svg
