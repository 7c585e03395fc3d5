"""Small inline SVG charts for the HTML report: open findings by severity, and their trend.

Plain SVG with inline attributes (no scripts, no external fonts or stylesheets), so the report
stays one self-contained file. Mail clients that drop SVG still have the numbers: every chart
sits next to a table holding the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

SEVERITY_COLOURS = {"critical": "#8b0000", "high": "#d9480f", "medium": "#e8a317",
                    "low": "#1c7ed6", "info": "#868e96"}
FONT = "font-family='Helvetica,Arial,sans-serif' font-size='12'"


def severity_bars(counts: Mapping[str, int], *, width: int = 360) -> Markup:
    """One horizontal bar per severity, scaled to the largest count, count at the bar's end."""
    row, label_width, count_width = 22, 70, 60
    biggest = max(counts.values(), default=0) or 1
    span = width - label_width - count_width
    parts = []
    for index, (severity, count) in enumerate(counts.items()):
        y = index * row
        bar = round(span * count / biggest) if count else 0
        parts.append(
            f"<text x='0' y='{y + 15}' {FONT} fill='#212529'>{escape(severity)}</text>"
            f"<rect x='{label_width}' y='{y + 4}' width='{bar}' height='14' "
            f"fill='{SEVERITY_COLOURS.get(severity, '#495057')}'/>"
            f"<text x='{label_width + bar + 6}' y='{y + 15}' {FONT} fill='#212529'>{count}</text>")
    height = row * len(counts)
    return Markup(f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
                  f"viewBox='0 0 {width} {height}' role='img' "
                  f"aria-label='open findings by severity'>{''.join(parts)}</svg>")


def trend_line(points: Sequence[Mapping[str, Any]], *, width: int = 560,
               height: int = 90, unit: str = "report") -> Markup | None:
    """Open findings per report (oldest first) as a line with dots; None for fewer than two.
    ``unit`` names what one point is (the web dashboard draws one point per day)."""
    values = [point["open"] for point in points if point.get("open") is not None]
    if len(values) < 2:
        return None
    pad, top = 24, max(values) or 1
    step = (width - 2 * pad) / (len(values) - 1)

    def y(value: int) -> float:
        return round(height - pad - (height - 2 * pad) * value / top, 1)

    coordinates = [(round(pad + index * step, 1), y(value)) for index, value in enumerate(values)]
    path = " ".join(f"{x},{y_}" for x, y_ in coordinates)
    dots = "".join(f"<circle cx='{x}' cy='{y_}' r='3' fill='#1c7ed6'/>" for x, y_ in coordinates)
    last_x, last_y = coordinates[-1]
    return Markup(
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='open findings per {escape(unit)}'>"
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' "
        f"stroke='#ced4da'/><polyline points='{path}' fill='none' stroke='#1c7ed6' "
        f"stroke-width='2'/>{dots}<text x='{last_x}' y='{max(last_y - 8, 10)}' {FONT} "
        f"text-anchor='end' fill='#212529'>{values[-1]}</text>"
        f"<text x='{pad}' y='{height - 6}' {FONT} fill='#868e96'>{len(values)} "
        f"{escape(unit)}s</text>"
        f"</svg>")


def column_bars(counts: Mapping[str, int], *, width: int = 420, height: int = 140,
                label: str = "count") -> Markup:
    """One vertical bar per bucket (in the given order), scaled to the largest count, with the
    count above each bar and the bucket's name below it."""
    pad_top, pad_bottom = 18, 20
    biggest = max(counts.values(), default=0) or 1
    slot = width / max(len(counts), 1)
    span_ = height - pad_top - pad_bottom
    parts = [f"<line x1='0' y1='{height - pad_bottom}' x2='{width}' y2='{height - pad_bottom}' "
             "stroke='#ced4da'/>"]
    for index, (name, count) in enumerate(counts.items()):
        bar = round(span_ * count / biggest) if count else 0
        x, middle = round(index * slot + slot * 0.15, 1), round(index * slot + slot / 2, 1)
        top = height - pad_bottom - bar
        parts.append(
            f"<rect x='{x}' y='{top}' width='{round(slot * 0.7, 1)}' height='{bar}' "
            f"fill='#1c7ed6'><title>{escape(name)}: {count}</title></rect>"
            f"<text x='{middle}' y='{top - 4}' {FONT} text-anchor='middle' "
            f"fill='#212529'>{count}</text>"
            f"<text x='{middle}' y='{height - 5}' {FONT} text-anchor='middle' "
            f"fill='#495057'>{escape(name)}</text>")
    return Markup(f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
                  f"viewBox='0 0 {width} {height}' role='img' "
                  f"aria-label='{escape(label)}'>{''.join(parts)}</svg>")
