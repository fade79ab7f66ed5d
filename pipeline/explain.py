"""Why did it say cat? One prediction's logit split into per-pixel contributions, as a picture and as JSON.

For a single neuron the answer is exact: z = b + sum_j w_j x_j, with x the image's features scaled as in
training (divide255: x_j = p_j / 255; standardize: x_j = (p_j - mean_j) / std_j). The contribution of a
pixel is w_j x_j summed over its three channels; the contributions and b add up to z, and p = sigmoid(z).
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline import page
from pipeline.evaluate import enlarged
from pipeline.features import features
from pipeline.gallery import image_name, ranked
from pipeline.files import png_bytes, write_png, write_text
from pipeline.model import sigmoid
from pipeline.names import inside, printable, safe_name
from pipeline.pictures import weights_image
from pipeline.plots import font

CELL = 8  # side of the square regions whose contributions are summed and ranked
TOP_CELLS = 5  # how many of them the JSON lists
NAME_SHOWN = 60  # characters of a file name in a picture's title
TOWARDS_1 = np.array([178, 24, 43])  # dark red: pushes towards class 1 (cat)
TOWARDS_0 = np.array([33, 102, 172])  # dark blue: pushes towards class 0 (non-cat); ColorBrewer's RdBu ends


def contributions(model, pixels):
    """pixels (h, w, 3) uint8 -> (contributions (h, w), z): w_j x_j summed over channels, and the logit.

    z is the model's own w.T X + b, computed exactly as predict computes it; b + contributions.sum() equals
    it to floating-point precision (the same terms, added in another order).
    """
    X = features(pixels[None], model.scaler)  # (n_x, 1), scaled exactly as in training
    c = (model.w * X).reshape(model.image_shape).sum(axis=2)  # (n_x, 1) -> (h, w, 3) -> (h, w)
    z = float(model.logits(pixels[None])[0, 0])  # (1, 1)
    return c, z


def top_cells(c, model, size=CELL, k=TOP_CELLS):
    """The k size x size regions of c (h, w) with the largest summed contribution either way, largest first."""
    h, w = c.shape
    sums = np.add.reduceat(np.add.reduceat(c, range(0, h, size), axis=0), range(0, w, size), axis=1)
    order = np.argsort(-np.abs(sums), axis=None, kind="stable")[:k]  # (rows, cols) flattened
    return [{"top": int(r * size), "left": int(col * size), "height": int(min(size, h - r * size)),
             "width": int(min(size, w - col * size)), "contribution": float(sums[r, col]),
             "towards": model.classes[int(sums[r, col] > 0)] if sums[r, col] else None}  # 0: neither class
            for r, col in zip(*np.unravel_index(order, sums.shape))]


def explain(model, pixels, threshold, path):
    """The explanation of one image, pixels (h, w, 3) uint8, as a JSON-ready dict (see docs/explain.md).

    Returns (record, c): c the (h, w) contributions the pictures are drawn from.
    """
    c, z = contributions(model, pixels)
    p = float(sigmoid(np.array(z)))
    record = {"path": str(path), "label": model.classes[int(p > threshold)], "probability": p,
              "threshold": threshold, "classes": list(model.classes), "bias": model.b,
              "contributions_sum": float(c.sum()), "z": z, "scale": scale(c),
              "cell_size": CELL, "top_cells": top_cells(c, model)}
    return record, c


def scale(c):
    """The colour scale's half-range: the largest contribution either way (1.0 when all are 0)."""
    return float(np.max(np.abs(c))) or 1.0


def contribution_pixels(c, half_range):
    """c (h, w) -> (h, w, 3) uint8 on a diverging scale centred at zero: white at 0, TOWARDS_1 at +half_range,
    TOWARDS_0 at -half_range."""
    t = np.clip(c / half_range, -1, 1)[..., None]  # (h, w, 1) in [-1, 1]
    end = np.where(t > 0, TOWARDS_1, TOWARDS_0)  # (h, w, 3)
    return np.round(255 + np.abs(t) * (end - 255)).astype(np.uint8)


def legend(width, half_range, classes):
    """The colour bar of contribution_pixels with its range, as a Pillow image of the given width."""
    bar = contribution_pixels(np.linspace(-half_range, half_range, width)[None, :].repeat(14, axis=0), half_range)
    image = Image.new("RGB", (width, 52), "white")
    image.paste(Image.fromarray(bar, "RGB"), (0, 0))
    draw, fnt = ImageDraw.Draw(image), font(12)
    draw.text((0, 18), f"{-half_range:.3g}", fill="black", font=fnt)
    draw.text((width / 2, 18), "0", fill="black", font=fnt, anchor="ma")
    draw.text((width, 18), f"+{half_range:.3g}", fill="black", font=fnt, anchor="ra")
    draw.text((0, 34), f"towards {classes[0]}", fill=tuple(TOWARDS_0), font=fnt)
    draw.text((width, 34), f"towards {classes[1]}", fill=tuple(TOWARDS_1), font=fnt, anchor="ra")
    return image


def headline(record):
    """The picture's first title line: the file's name, the answer, p against the threshold."""
    name = printable(Path(record["path"]).name)  # a name is data: one line, bounded
    name = name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN - 3] + "..."
    p, threshold = record["probability"], record["threshold"]
    return f"{name}: {record['label']}, p = {p:.3f} {'>' if p > threshold else '<='} threshold {threshold:.3g}"


def picture(model, pixels, record, c, enlarge=4):
    """Side by side and enlarged: the image as the neuron saw it, the contributions with their legend, the
    weights; the title gives the file's name, label, p against the threshold, then z and b."""
    h, w, _ = model.image_shape
    side = w * enlarge
    column = max(side, 200)  # room for the titles and the legend's words when the model's images are tiny
    panels = [("as the neuron saw it", enlarged(pixels, enlarge)),
              ("contribution of each pixel (w x)", enlarged(contribution_pixels(c, record["scale"]), enlarge)),
              ("the weights w", weights_image(model.w, model.image_shape, enlarge))]
    gap, top = 16, 64
    image = Image.new("RGB", (3 * column + 4 * gap, top + h * enlarge + 60), "white")
    draw = ImageDraw.Draw(image)
    draw.text((gap, 6), headline(record), fill="black", font=font(14))
    draw.text((gap, 26), f"z = {record['z']:.4f} = "
                        f"b ({record['bias']:.4f}) + the sum of the contributions ({record['contributions_sum']:.4f})",
              fill="black", font=font(14))
    for k, (title, panel) in enumerate(panels):
        x0 = gap + k * (column + gap)
        draw.text((x0, top - 16), title, fill="black", font=font(12))
        image.paste(panel, (x0, top))
    image.paste(legend(column, record["scale"], model.classes), (gap + column + gap, top + h * enlarge + 6))
    return image



def write_explanation(folder, k, path, model, pixels, threshold, enlarge=4):
    """Write <k>_<name>.json and <k>_<name>.png (name: the input's, made safe) into folder; return the record."""
    folder = Path(folder)
    stem = f"{k:05d}_{safe_name(Path(path).stem)}"
    record, c = explain(model, pixels, threshold, path)
    record["picture"] = f"{stem}.png"
    write_png(inside(folder, f"{stem}.png"), picture(model, pixels, record, c, enlarge))
    write_text(inside(folder, f"{stem}.json"), json.dumps(record, indent=2) + "\n")
    return record


def report_section(test_set, P, model, enlarge):
    """The run report's section: the explanation of its most confident right and wrong test images."""
    _, _, wrong, right = ranked(test_set, P, model)
    parts = []
    for title, chosen in (("most confident right", right), ("most confident wrong", wrong)):
        if not len(chosen):
            parts.append(page.paragraph(f"{title}: none"))
            continue
        i = int(chosen[0])
        pixels = np.asarray(test_set.x[i])  # (h, w, 3)
        name = image_name(test_set, i)
        record, c = explain(model, pixels, model.threshold, name)
        caption = (f"{title}: {name}, true {model.classes[test_set.y[0, i]]}, predicted {record['label']} "
                   f"(p = {record['probability']:.3f}, z = {record['z']:.3f})")
        parts.append(page.figure(page.img(png_bytes(picture(model, pixels, record, c, enlarge)), "image/png",
                                          caption), caption))
    return page.section("explained", "What the neuron looked at: two test images explained", *parts,
                        page.paragraph("Each pixel's share of the decision is w·x summed over its red, green and "
                                       "blue values; the shares and the bias b add up to the logit z. Red pixels "
                                       f"push towards {model.classes[1]}, blue ones towards {model.classes[0]}."))
