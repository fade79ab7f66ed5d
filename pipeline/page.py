"""Pieces of a self-contained HTML page: every picture inlined as a data: URI, no script, no network; and the
formats numbers are shown in (percentages with two decimals, other numbers to five significant digits)."""
import base64
from html import escape

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #111; }
img { max-width: 100%; height: auto; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { vertical-align: bottom; }
tr.best td { background: #fff3c4; font-weight: bold; } .note { color: #444; }
table.summary { font-size: 0.9em; } table.summary td, table.summary th { padding: 0.2em 0.4em; }
.scroll { overflow-x: auto; } table.summary td:first-child { white-space: nowrap; }
.provenance td:first-child { white-space: nowrap; } .provenance td { overflow-wrap: anywhere; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; } figcaption { font-size: 0.85em; max-width: 260px; overflow-wrap: anywhere; }
.gallery figcaption { max-width: 160px; }
img.pixels { image-rendering: pixelated; border: 1px solid #999; }
.glance { font-size: 1.1em; background: #f4f4f4; padding: 0.6em 0.9em; border-left: 4px solid #555; }
.scale { display: inline-block; width: 200px; height: 14px; border: 1px solid #999; vertical-align: middle;
         background: linear-gradient(to right, black, rgb(128, 128, 128), white); }
"""


def data_uri(data, mime):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(data, mime, alt, width=None, css_class=None):
    """An <img> holding data (bytes) inline; width (pixels) enlarges it on screen."""
    size = f' width="{width}"' if width else ""
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img src="{data_uri(data, mime)}" alt="{escape(alt)}"{size}{cls}>'


def svg_img(svg_text, alt):
    return img(svg_text.encode("utf-8"), "image/svg+xml", alt)


def figure(image_html, caption, *more):
    """An image with its caption: a line of text, and more lines below it (a gallery's source name, then
    what the model said)."""
    lines = "<br>".join(escape(line) for line in (caption, *more))
    return f"<figure>{image_html}<figcaption>{lines}</figcaption></figure>"


class Html(str):
    """Text that is already HTML: table() puts it in as it is, instead of escaping it."""


def html(value):
    return value if isinstance(value, Html) else escape(yes_no(value))


def yes_no(value):
    """A setting as a reader says it: Yes and No for true and false (Python's True, YAML's true), else as it is."""
    return {True: "Yes", False: "No"}[value] if isinstance(value, bool) else str(value)


def tip(text, full):
    """text shown, full (e.g. every digit of a number) in a tooltip."""
    return Html(f'<span title="{escape(str(full))}">{escape(str(text))}</span>')


def link(text, href):
    return Html(f'<a href="{escape(href)}">{escape(str(text))}</a>')


def percent(fraction):
    """0.990430622 -> '99.04 %': every percentage in the reports has two decimals."""
    return f"{100 * fraction:.2f} %"


def number(value):
    """A cost, loss or area to five significant digits, trailing zeros kept so that columns line up:
    0.7 -> '0.70000', 0.1408719 -> '0.14087'."""
    return f"{value:#.5g}"


def table(header, rows, numeric=(), css_class=None, row_classes=None):
    """An HTML table; the columns whose index is in numeric are right-aligned; row_classes maps a row's index
    to its CSS class (e.g. best). Cells are text, or Html (tip, link) put in as it is."""
    head = "".join(f"<th>{html(h)}</th>" for h in header)
    row_classes = row_classes or {}
    body = "".join((f'<tr class="{row_classes[i]}">' if i in row_classes else "<tr>")
                   + "".join(f'<td{" class=num" if k in numeric else ""}>{html(v)}</td>' for k, v in enumerate(row))
                   + "</tr>\n" for i, row in enumerate(rows))
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><tr>{head}</tr>\n{body}</table>"


def section(key, title, *parts):
    return f'<section id="{key}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def paragraph(text, css_class=None):
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{escape(text)}</p>"


def document(title, *sections):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")
