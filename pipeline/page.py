"""Pieces of a self-contained HTML page: every picture inlined as a data: URI, no script, no network."""
import base64
from html import escape

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #111; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; } figcaption { font-size: 0.85em; max-width: 260px; }
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


def figure(image_html, caption):
    return f"<figure>{image_html}<figcaption>{escape(caption)}</figcaption></figure>"


def table(header, rows, numeric=()):
    """An HTML table; the columns whose index is in numeric are right-aligned."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if k in numeric else ""}>{escape(str(v))}</td>'
                                    for k, v in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def section(key, title, *parts):
    return f'<section id="{key}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def paragraph(text, css_class=None):
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{escape(text)}</p>"


def document(title, *sections):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")
