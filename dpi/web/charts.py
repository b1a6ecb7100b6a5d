"""Inline SVG bar charts, computed on the server (no chart library, no CDN, nothing for a CSP to block).

The view builds a ``BarChart`` from labelled series; the template ``web/_bar_chart.html`` draws it with SVG
presentation attributes only (no ``style`` attributes), and a data table follows each chart for screen
readers and for anyone who prefers numbers.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import date, timedelta

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 34
# Colours with at least 3:1 contrast against white (WCAG 1.4.11 for graphics) and distinct in grey scale.
PALETTE = ("#0b5cad", "#a30000", "#6b4c00", "#2f6b2f")


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    series: str
    colour: str


@dataclass
class Tick:
    y: float
    value: int


@dataclass
class XLabel:
    x: float
    text: str


@dataclass
class BarChart:
    title: str
    labels: list[str]
    series: dict[str, list[int]]
    axis_label: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    xlabels: list[XLabel] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    baseline: float = HEIGHT - BOTTOM
    left: float = LEFT
    right_edge: float = WIDTH - RIGHT

    @property
    def empty(self) -> bool:
        return not any(v for values in self.series.values() for v in values)

    @property
    def rows(self) -> list[tuple[str, list[int]]]:
        """The data table: one row per label, one column per series."""
        return [(label, [values[i] for values in self.series.values()]) for i, label in enumerate(self.labels)]


def _tick_step(value: int) -> int:
    """The smallest 1-2-5 step such that four steps reach ``value`` (whole numbers: these are counts)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude * 4 >= value:
                return step * magnitude
        magnitude *= 10


def bar_chart(title: str, labels: list[str], series: dict[str, list[int]], *, axis_label: str = "",
              label_every: int = 1) -> BarChart:
    """Grouped bars: one group per label, one bar per series in the group."""
    chart = BarChart(title=title, labels=labels, series=series, axis_label=axis_label)
    n, k = max(len(labels), 1), max(len(series), 1)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = _tick_step(max((v for values in series.values() for v in values), default=0))
    top = step * 4
    group_w = plot_w / n
    bar_w = max(group_w * 0.8 / k, 1.0)
    for s_index, (name, values) in enumerate(series.items()):
        colour = PALETTE[s_index % len(PALETTE)]
        chart.legend.append((name, colour))
        for i, value in enumerate(values):
            h = plot_h * value / top
            x = LEFT + i * group_w + group_w * 0.1 + s_index * bar_w
            chart.bars.append(Bar(round(x, 1), round(HEIGHT - BOTTOM - h, 1), round(bar_w, 1), round(h, 1),
                                  value, labels[i], name, colour))
    for j in range(5):
        value = step * j
        chart.ticks.append(Tick(round(HEIGHT - BOTTOM - plot_h * value / top, 1), value))
    for i, label in enumerate(labels):
        if i % label_every == 0:
            chart.xlabels.append(XLabel(round(LEFT + i * group_w + group_w / 2, 1), label))
    return chart


def day_labels(since: date, days: int) -> list[date]:
    return [since + timedelta(days=i) for i in range(days)]


@dataclass
class HBarRow:
    """One bar of an ``HBarChart``: its label on as many lines as it needs (``lines``: (y, text)), never cut."""

    label: str
    lines: list[tuple[float, str]]
    y: float  # top of the bar
    width: float
    text_x: float  # where the value is written
    value: int
    middle: float  # vertical middle of the bar (the value's baseline)


# Labels are right-aligned to ``label_x`` in 12 px text (dpi.css): about 6.5 user units a character, so a
# line of this many characters fits left of the bars; longer labels wrap onto more lines.
HBAR_LABEL_CHARS = 34
HBAR_LINE_HEIGHT = 14
HBAR_BAR_HEIGHT = 18
HBAR_GAP = 8


@dataclass
class HBarChart:
    """Horizontal bars: one row per (long) label, wrapped, the value written at the end of the bar."""

    title: str
    labels: list[str]
    series: dict[str, list[int]]
    axis_label: str = ""
    width: int = WIDTH
    height: int = 0
    label_x: int = 236
    bar_x: int = 244
    rows_geometry: list[HBarRow] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    colour: str = PALETTE[0]

    @property
    def empty(self) -> bool:
        return not any(v for values in self.series.values() for v in values)

    @property
    def rows(self) -> list[tuple[str, list[int]]]:
        return [(label, [values[i] for values in self.series.values()]) for i, label in enumerate(self.labels)]


def hbar_chart(title: str, labels: list[str], series: dict[str, list[int]], *, axis_label: str = "") -> HBarChart:
    """One series drawn as horizontal bars (long category names stay readable: they wrap, whole)."""
    name, values = next(iter(series.items()), ("", []))
    chart = HBarChart(title=title, labels=labels, series=series, axis_label=axis_label)
    chart.legend.append((name, chart.colour))
    top = max(values, default=0) or 1
    room = WIDTH - chart.bar_x - 48
    y = 4.0
    for label, value in zip(labels, values, strict=True):
        texts = textwrap.wrap(label, HBAR_LABEL_CHARS) or [""]
        block = max(HBAR_BAR_HEIGHT, len(texts) * HBAR_LINE_HEIGHT)
        middle = y + block / 2
        first = middle - (len(texts) - 1) * HBAR_LINE_HEIGHT / 2
        w = round(room * value / top, 1)
        chart.rows_geometry.append(HBarRow(
            label=label, lines=[(round(first + i * HBAR_LINE_HEIGHT, 1), t) for i, t in enumerate(texts)],
            y=round(middle - HBAR_BAR_HEIGHT / 2, 1), width=w, text_x=chart.bar_x + w + 6, value=value,
            middle=round(middle, 1),
        ))
        y += block + HBAR_GAP
    chart.height = max(1, round(y + 4 - HBAR_GAP))
    return chart
