"""Line charts drawn once as a list of shapes, then rendered as SVG text or as a Pillow PNG image.

A chart is made of axes ranged from the data, readable tick labels, an optional log-scale y axis and one
polyline per series (one point per data point). Series differ in colour, lightness and dash pattern, so
they stay distinguishable in greyscale print.
"""
import math
from dataclasses import dataclass, field
from html import escape  # not xml.sax.saxutils, whose import pulls in urllib, http.client and ssl

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# (colour, dash pattern): Okabe-Ito colours of different lightness, each with its own dash pattern
STYLES = [("#000000", ()), ("#d55e00", (8, 4)), ("#0072b2", (2, 3)), ("#e69f00", (10, 3, 2, 3)),
          ("#56b4e9", (5, 5)), ("#009e73", (1, 2)), ("#cc79a7", (12, 4))]

LEFT, RIGHT, TOP, BOTTOM = 72, 20, 34, 52  # margins around the plot area, in pixels
FONT_SIZE = 13


def style(k):
    """Series k's (colour, dash): STYLES for the first seven, then each colour with another dash pattern, so
    that no two of the first 49 series look alike."""
    n = len(STYLES)
    return STYLES[k % n][0], STYLES[(k + k // n) % n][1]


@dataclass
class Chart:
    """What to draw, in pixels: ("line", x1, y1, x2, y2, colour, width, dash), ("polyline", points, colour,
    width, dash), ("circle", x, y, r, colour), ("rect", x, y, w, h, fill, stroke),
    ("text", x, y, text, anchor, rotated[, length]): a length (pixels) is the text's drawn width, kept exactly
    in SVG too, whatever the browser's font, so that a legend's text never leaves its box."""

    width: int
    height: int
    shapes: list = field(default_factory=list)


def ticks(lo, hi, log=False):
    """Tick values inside [lo, hi]: about five round numbers, or the powers of ten (with 2 and 5) in log scale."""
    if log:
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        steps = (1,) if len(decades) > 4 else (1, 2, 5) if len(decades) > 2 else (1, 2, 3, 5, 7)
        return [s * 10.0 ** d for d in decades for s in steps if lo <= s * 10.0 ** d <= hi]
    raw = (hi - lo) / 5
    step = min((s * 10 ** math.floor(math.log10(raw)) for s in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def label(v):
    return f"{v:.4g}"


def line_chart(series, title, xlabel, ylabel, log_y=False, unit_square=False, reference=None, size=(640, 400),
               marker=None):
    """Chart of series [(name, xs, ys)]; unit_square fixes both axes to [0, 1]; reference ((x0, y0), (x1, y1))
    is a grey dashed line, e.g. what chance would score; marker (x, text) a vertical line at x, labelled, e.g.
    the iteration whose weights were kept."""
    w, h = size
    chart = Chart(w, h)
    xs = np.concatenate([np.asarray(s[1], float) for s in series])
    ys = np.concatenate([np.asarray(s[2], float) for s in series])
    if log_y and np.any(ys <= 0):
        raise ValueError("a log-scale axis needs positive values")
    fy = np.log10 if log_y else (lambda v: v)
    (x0, x1), (y0, y1) = ((0, 1), (0, 1)) if unit_square else (_span(xs), _span(fy(ys), pad=0.05))
    px = lambda v: LEFT + (v - x0) / (x1 - x0) * (w - LEFT - RIGHT)
    py = lambda v: h - BOTTOM - (fy(v) - y0) / (y1 - y0) * (h - TOP - BOTTOM)
    for v in ticks(x0, x1):
        chart.shapes += [("line", px(v), TOP, px(v), h - BOTTOM, "#eeeeee", 1, ()),
                         ("text", px(v), h - BOTTOM + 6, label(v), "mt", False)]
    for v in ticks(*((10 ** y0, 10 ** y1) if log_y else (y0, y1)), log=log_y):
        chart.shapes += [("line", LEFT, py(v), w - RIGHT, py(v), "#eeeeee", 1, ()),
                         ("text", LEFT - 6, py(v), label(v), "rm", False)]
    chart.shapes += [("line", LEFT, h - BOTTOM, w - RIGHT, h - BOTTOM, "black", 1, ()),
                     ("line", LEFT, TOP, LEFT, h - BOTTOM, "black", 1, ()),
                     ("text", w / 2, 8, title, "mt", False),
                     ("text", (LEFT + w - RIGHT) / 2, h - 8, xlabel, "ms", False),
                     ("text", 14, (TOP + h - BOTTOM) / 2, ylabel + (" (log scale)" if log_y else ""), "mm", True)]
    if reference:
        (ax, ay), (bx, by) = reference
        chart.shapes.append(("line", px(ax), py(ay), px(bx), py(by), "#bbbbbb", 1, (4, 4)))
    if marker:
        x, text = px(marker[0]), marker[1]
        chart.shapes += [("line", x, TOP, x, h - BOTTOM, "#666666", 1, (3, 3)),
                         ("text", x + (4 if x < w / 2 else -4), TOP + 4, text, "lt" if x < w / 2 else "rt", False)]
    drawn = []
    for k, (name, sx, sy) in enumerate(series):
        colour, dash = style(k)
        points = [(px(a), py(b)) for a, b in zip(sx, sy)]
        drawn += points
        chart.shapes.append(("polyline", points, colour, 2, dash))
        if len(points) <= 40:  # markers show where the values were recorded (and a single point at all)
            chart.shapes += [("circle", x, y, 2.5, colour) for x, y in points]
    if len(series) > 1 or series[0][0]:
        _legend(chart, series, drawn)
    return chart


def _legend(chart, series, points, row=18):
    """A boxed legend in the corner of the plot area that covers the fewest data points, as wide as its
    longest name (a name longer than the plot is cut with an ellipsis)."""
    fnt, room = font(), chart.width - LEFT - RIGHT - 16 - 50  # 50: the sample line and the gaps beside the text
    names = [_fit(name, fnt, room) for name, _, _ in series]
    lengths = [fnt.getlength(name) for name in names]
    width, height = math.ceil(50 + max(lengths)), row * len(series) + 8
    corners = [(chart.width - RIGHT - width - 4, TOP + 4), (LEFT + 8, chart.height - BOTTOM - height - 4),
               (chart.width - RIGHT - width - 4, chart.height - BOTTOM - height - 4), (LEFT + 8, TOP + 4)]
    covered = lambda c: sum(c[0] <= x <= c[0] + width and c[1] <= y <= c[1] + height for x, y in points)
    x0, y0 = min(corners, key=covered)  # the first corner wins a tie
    chart.shapes.append(("rect", x0, y0, width, height, "white", "#999999"))
    for k, (name, length) in enumerate(zip(names, lengths)):
        colour, dash = style(k)
        y = y0 + 4 + row * k + row / 2
        chart.shapes += [("line", x0 + 6, y, x0 + 36, y, colour, 2, dash),
                         ("text", x0 + 42, y, name, "lm", False, length)]


def _fit(text, fnt, room):
    """text, or its longest beginning that fits in room pixels followed by an ellipsis."""
    if fnt.getlength(text) <= room:
        return text
    while text and fnt.getlength(text + "…") > room:
        text = text[:-1]
    return text + "…"


def _span(values, pad=0.0):
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi == lo:  # a flat series still needs an axis
        lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
    return lo - (hi - lo) * pad, hi + (hi - lo) * pad


def svg(chart):
    """The chart as a standalone SVG document."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{chart.width}" height="{chart.height}" '
           f'viewBox="0 0 {chart.width} {chart.height}" font-family="sans-serif" font-size="{FONT_SIZE}">',
           f'<rect width="{chart.width}" height="{chart.height}" fill="white"/>']
    anchors = {"l": "start", "m": "middle", "r": "end"}
    baselines = {"t": "hanging", "m": "middle", "s": "alphabetic"}
    for kind, *a in chart.shapes:
        if kind in ("line", "polyline"):
            dash = f' stroke-dasharray="{" ".join(map(str, a[-1]))}"' if a[-1] else ""
            stroke = f'stroke="{a[-3]}" stroke-width="{a[-2]}"{dash}'
        if kind == "line":
            out.append(f'<line x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{a[2]:.1f}" y2="{a[3]:.1f}" {stroke}/>')
        elif kind == "polyline":
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in a[0])
            out.append(f'<polyline points="{points}" fill="none" {stroke} stroke-linejoin="round"/>')
        elif kind == "circle":
            out.append(f'<circle cx="{a[0]:.1f}" cy="{a[1]:.1f}" r="{a[2]}" fill="{a[3]}"/>')
        elif kind == "rect":
            out.append(f'<rect x="{a[0]:.1f}" y="{a[1]:.1f}" width="{a[2]}" height="{a[3]}" fill="{a[4]}" '
                       f'stroke="{a[5]}"/>')
        else:
            x, y, text, anchor, rotated, *length = a
            turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotated else ""
            fixed = f' textLength="{length[0]:.1f}" lengthAdjust="spacingAndGlyphs"' if length else ""
            out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchors[anchor[0]]}" '
                       f'dominant-baseline="{baselines[anchor[1]]}"{turn}{fixed}>{escape(text, quote=False)}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


def font(size=FONT_SIZE):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only its small bitmap font
        return ImageFont.load_default()


def png(chart, scale=2):
    """The chart as a Pillow RGB image, drawn at `scale` times the size and reduced, for smooth lines."""
    s = scale
    image = Image.new("RGB", (chart.width * s, chart.height * s), "white")
    draw, fnt = ImageDraw.Draw(image), font(FONT_SIZE * s)
    for kind, *a in chart.shapes:
        if kind == "line":
            _polyline(draw, [(a[0] * s, a[1] * s), (a[2] * s, a[3] * s)], a[4], a[5] * s, [d * s for d in a[6]])
        elif kind == "polyline":
            _polyline(draw, [(x * s, y * s) for x, y in a[0]], a[1], a[2] * s, [d * s for d in a[3]])
        elif kind == "circle":
            x, y, r = a[0] * s, a[1] * s, a[2] * s
            draw.ellipse((x - r, y - r, x + r, y + r), fill=a[3])
        elif kind == "rect":
            draw.rectangle((a[0] * s, a[1] * s, (a[0] + a[2]) * s, (a[1] + a[3]) * s), fill=a[4], outline=a[5], width=s)
        elif a[4]:  # rotated text: draw it on its own strip, turn it, paste it centred on (x, y)
            box = draw.textbbox((0, 0), a[2], font=fnt)
            strip = Image.new("RGB", (box[2] + 2, box[3] + 2), "white")
            ImageDraw.Draw(strip).text((1, 1), a[2], fill="black", font=fnt)
            strip = strip.rotate(90, expand=True)
            image.paste(strip, (int(a[0] * s - strip.width / 2), int(a[1] * s - strip.height / 2)))
        else:
            draw.text((a[0] * s, a[1] * s), a[2], fill="black", font=fnt, anchor=a[3].replace("t", "a"))
    # each pixel the mean of its scale x scale block: smooth enough, and a tenth of a LANCZOS resize's time
    return image.reduce(s)


def _polyline(draw, points, colour, width, dash):
    """Pillow has no dashed lines: walk the polyline and draw only the 'on' parts of the dash pattern."""
    if not dash:
        draw.line(points, fill=colour, width=int(width), joint="curve")
        return
    pattern, k, left = list(dash), 0, dash[0]
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        length, done = math.hypot(xb - xa, yb - ya), 0.0
        while done < length:
            step = min(left, length - done)
            if k % 2 == 0:
                t0, t1 = done / length, (done + step) / length
                draw.line([(xa + (xb - xa) * t0, ya + (yb - ya) * t0), (xa + (xb - xa) * t1, ya + (yb - ya) * t1)],
                          fill=colour, width=int(width))
            done, left = done + step, left - step
            if left <= 0:
                k = (k + 1) % len(pattern)
                left = pattern[k]
