"""Charts along the depth of a network, as inline SVG: one column per layer, or per bin of consecutive layers
when there are more layers than columns fit (MAX_COLUMNS), so a chart of 20,000 layers stays as small as one
of 500.

A column is a range (low to high: a layer's min and max) or points (one value per series, marked by shape);
columns with findings carry a mark in the colour and shape of their worst severity, frozen columns a band
behind them. Colours are CSS classes (the page's stylesheet: colour-blind safe, light and dark); every column
has a <title> (the hover text) and links to its findings. Values that a log scale cannot show (<= 0) are
drawn as a triangle on the axis, values not finite as a cross.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

MAX_COLUMNS = 480
WIDTH, HEIGHT = 960, 160
LEFT, RIGHT, TOP, BOTTOM = 64, 10, 16, 26  # margins: the axis labels, the finding marks, the depth labels
SHAPES = ("circle", "square", "triangle", "diamond")  # of the series of a points chart, in order


@dataclass(frozen=True)
class Column:
    """What one layer shows in a chart."""

    name: str
    values: tuple[float | None, ...]  # (low, high) of a range chart; one value per series of a points chart
    nonfinite: bool = False  # some value was NaN or Inf
    mark: str = ""  # "error", "warning", "info": the worst finding's severity; "" none
    frozen: bool = False
    link: str = ""  # the id of the layer's first finding


@dataclass(frozen=True)
class _Bin:
    first: int
    last: int
    low: tuple[float | None, ...]  # per value: the smallest (of a range: low) over the bin's layers
    high: tuple[float | None, ...]
    nonfinite: bool
    clipped: bool  # a value the scale cannot show (log scale, <= 0)
    mark: str
    frozen: bool
    link: str
    title: str


_RANK = {"": 0, "info": 1, "warning": 2, "error": 3}


def depth_chart(
    title: str,
    columns: Sequence[Column],
    *,
    log: bool = False,
    series: Sequence[str] = (),
    chart_id: str = "",
) -> str:
    """An SVG chart of ``columns`` in depth order: ranges (``series`` empty) or points, one shape per series."""
    bins = _bins(columns, log)
    values = [v for b in bins for v in (*b.low, *b.high) if v is not None and (v > 0 or not log)]
    scale = _Scale(values, log)
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / max(len(bins), 1)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, b in enumerate(bins):  # frozen bands first: behind everything
        if b.frozen:
            parts.append(
                f'<rect class="frozen" x="{LEFT + i * step:.1f}" y="{TOP}" width="{step:.2f}" '
                f'height="{HEIGHT - TOP - BOTTOM}"/>'
            )
    parts.extend(scale.axis())
    width = min(max(step * 0.7, 1.0), 18.0)
    for i, b in enumerate(bins):
        x = LEFT + (i + 0.5) * step
        body = [f"<title>{escape(b.title)}</title>"]
        hit = f'<rect class="hit" x="{x - step / 2:.1f}" y="0" width="{step:.2f}" height="{HEIGHT - BOTTOM}"/>'
        body.append(hit)
        kind = b.mark or "ok"
        if series:
            for shape, value in zip(SHAPES, b.high, strict=False):
                if value is not None:
                    body.append(_shape(shape, x, scale.y(value), f"point s-{shape}"))
        elif b.low[0] is not None and b.high[-1] is not None:
            low, high = scale.y(b.low[0]), scale.y(b.high[-1])
            top, height = min(low, high), max(abs(low - high), 1.5)
            body.append(
                f'<rect class="bar {kind}" x="{x - width / 2:.1f}" y="{top:.1f}" width="{width:.2f}" '
                f'height="{height:.1f}"/>'
            )
        if b.clipped:
            body.append(_shape("triangle-down", x, HEIGHT - BOTTOM - 4, "clipped"))
        if b.nonfinite:
            body.append(f'<text class="nonfinite" x="{x:.1f}" y="{TOP + 10}" text-anchor="middle">&#215;</text>')
        if b.mark:
            body.append(_shape(_MARK_SHAPE[b.mark], x, TOP - 8, f"mark {b.mark}"))
        group = f'<g class="col" data-first="{b.first}" data-last="{b.last}">{"".join(body)}</g>'
        parts.append(f'<a href="#{escape(b.link)}">{group}</a>' if b.link else group)
    binned = f" (in {len(bins)} columns of {_per_bin(len(columns))} layers)" if len(bins) < len(columns) else ""
    parts.append(
        f'<text class="axis-label" x="{LEFT}" y="{HEIGHT - 6}">layer 1</text>'
        f'<text class="axis-label" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"layer {len(columns)}{binned}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


_MARK_SHAPE = {"error": "triangle", "warning": "diamond", "info": "circle"}


def _per_bin(count: int) -> int:
    return max(1, math.ceil(count / MAX_COLUMNS))


def _bins(columns: Sequence[Column], log: bool) -> list[_Bin]:
    per = _per_bin(len(columns))
    bins = []
    for first in range(0, len(columns), per):
        group = columns[first : first + per]
        width = max(len(c.values) for c in group)
        lows, highs, clipped = [], [], False
        for k in range(width):
            finite = [c.values[k] for c in group if k < len(c.values) and c.values[k] is not None]
            if log:
                clipped = clipped or any(v <= 0 for v in finite)
                finite = [v for v in finite if v > 0]
            lows.append(min(finite, default=None))
            highs.append(max(finite, default=None))
        mark = max((c.mark for c in group), key=_RANK.__getitem__)
        link = next((c.link for c in group if c.link and c.mark == mark), "")
        last = first + len(group) - 1
        names = group[0].name if len(group) == 1 else f"{group[0].name} … {group[-1].name} ({len(group)} layers)"
        title = f"#{first + 1}{'' if len(group) == 1 else f'-{last + 1}'} {names}: {_describe(lows, highs, width)}"
        bins.append(
            _Bin(
                first,
                last,
                tuple(lows),
                tuple(highs),
                any(c.nonfinite for c in group),
                clipped,
                mark,
                all(c.frozen for c in group),
                link,
                title + (f" — {mark}" if mark else ""),
            )
        )
    return bins


def _describe(lows: list[float | None], highs: list[float | None], width: int) -> str:
    if width == 2:  # a range
        low, high = lows[0] if lows else None, highs[-1] if highs else None
        return "no value" if low is None or high is None else f"{number(low)} to {number(high)}"
    return ", ".join("-" if h is None else number(h) for h in highs)


def number(x: float) -> str:
    """A value in brief: 4 significant digits."""
    return f"{x:.4g}"


def _shape(shape: str, x: float, y: float, cls: str, r: float = 3.2) -> str:
    if shape == "circle":
        return f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{r}"/>'
    if shape == "square":
        return f'<rect class="{cls}" x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}"/>'
    points = {
        "triangle": ((0, -r * 1.2), (r * 1.1, r), (-r * 1.1, r)),
        "triangle-down": ((0, r * 1.2), (r * 1.1, -r), (-r * 1.1, -r)),
        "diamond": ((0, -r * 1.3), (r * 1.1, 0), (0, r * 1.3), (-r * 1.1, 0)),
    }[shape]
    path = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in points)
    return f'<polygon class="{cls}" points="{path}"/>'


class _Scale:
    """The vertical axis: linear, or log10 over the positive values."""

    def __init__(self, values: list[float], log: bool) -> None:
        self.log = log
        finite = [v for v in values if math.isfinite(v)]
        low, high = (min(finite), max(finite)) if finite else ((1.0, 10.0) if log else (0.0, 1.0))
        if log:
            low, high = math.floor(math.log10(low)), math.ceil(math.log10(high))
            high = max(high, low + 1)
        elif high == low:
            low, high = low - (abs(low) or 1) * 0.5, high + (abs(high) or 1) * 0.5
        self.low, self.high = low, high

    def y(self, value: float) -> float:
        if not math.isfinite(value):
            value = math.copysign(1e308, value)
        v = math.log10(value) if self.log else value
        fraction = (v - self.low) / (self.high - self.low)
        fraction = min(max(fraction, 0.0), 1.0)
        return HEIGHT - BOTTOM - fraction * (HEIGHT - TOP - BOTTOM)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            stride = max(1, math.ceil((self.high - self.low) / 5))
            return [(10.0**e, f"1e{e}") for e in range(int(self.low), int(self.high) + 1, stride)]
        span = self.high - self.low
        stride = 10 ** math.floor(math.log10(span / 4))
        for factor in (1, 2, 5, 10):
            if span / (stride * factor) <= 5:
                stride *= factor
                break
        first = math.ceil(self.low / stride) * stride
        count = int((self.high - first) / stride + 1e-9) + 1
        return [(first + k * stride, f"{first + k * stride:.3g}") for k in range(count)]

    def axis(self) -> list[str]:
        out = []
        for value, label in self.ticks():
            y = self.y(value)
            out.append(
                f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="axis-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
            )
        return out
