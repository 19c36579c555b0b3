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


def test_a_day_without_data_is_a_gap_in_the_line_not_a_zero() -> None:
    days = ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]
    svg = charts.lines("Latency", days, [charts.Series("p50", [400, None, 300, 500], "p50")], " ms")
    assert svg.count("<polyline") == 2  # day 1 alone, then days 3 and 4
    assert svg.count("<circle") == 3
    assert "2026-12-02: p50 no data" in svg and "2026-12-03: p50 300 ms" in svg
    bottom = charts.HEIGHT - charts.BOTTOM
    assert f'cy="{bottom:.1f}"' not in svg  # nothing drawn at 0 ms
    empty = charts.lines("Latency", days[:2], [charts.Series("p50", [None, None], "p50")], " ms")
    assert "<polyline" not in empty and "<circle" not in empty
