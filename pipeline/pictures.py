"""Pictures that are not line charts: confusion matrices, the learned weights as an image, image tiles."""

import numpy as np
from PIL import Image, ImageDraw

from pipeline.evaluate import enlarged
from pipeline.plots import font

CELL = 96  # side of a confusion-matrix cell, in pixels


def confusion_image(confusions, classes):
    """Side-by-side confusion matrices, {split name: [[tn, fp], [fn, tp]]} (rows: true label), as one image.

    A cell is darker the larger its share of its row (of the true class), and shows the count and that share.
    """
    fnt, head = font(13), font(15)
    left, top, gap = 110, 64, 40
    width = left + len(confusions) * (2 * CELL + gap)
    image = Image.new("RGB", (width, top + 2 * CELL + 10), "white")
    draw = ImageDraw.Draw(image)
    for r, name in enumerate(classes):
        draw.text((left - 8, top + r * CELL + CELL / 2), f"true {name}", fill="black", font=fnt, anchor="rm")
    for k, (split, matrix) in enumerate(confusions.items()):
        x0 = left + k * (2 * CELL + gap)
        draw.text((x0 + CELL, 4), f"{split} ({int(np.sum(matrix))} images)", fill="black", font=head, anchor="ma")
        for c, name in enumerate(classes):
            draw.text((x0 + c * CELL + CELL / 2, top - 6), f"predicted {name}", fill="black", font=fnt, anchor="ms")
        for r in range(2):
            total = sum(matrix[r]) or 1
            for c in range(2):
                share = matrix[r][c] / total
                shade = int(round(245 - 190 * share))
                box = (x0 + c * CELL, top + r * CELL, x0 + (c + 1) * CELL, top + (r + 1) * CELL)
                draw.rectangle(box, fill=(shade,) * 3, outline="black")
                ink = "black" if shade > 140 else "white"
                draw.text((box[0] + CELL / 2, box[1] + CELL / 2 - 9), str(matrix[r][c]), fill=ink, font=head,
                          anchor="mm")
                draw.text((box[0] + CELL / 2, box[1] + CELL / 2 + 12), f"{share:.0%} of row", fill=ink, font=fnt,
                          anchor="mm")
    return image


def weights_pixels(w, image_shape):
    """w (n_x, 1) -> uint8 pixels of image_shape (h, w, 3): 0 is mid-grey, +max|w| white, -max|w| black.

    Each colour channel is shown on its own: a reddish pixel is one where red pushes towards class 1.
    """
    v = w.reshape(image_shape)  # (n_x, 1) -> (h, w, 3): the inverse of features.flatten for one image
    scale = float(np.max(np.abs(v))) or 1.0
    return np.clip(np.round(127.5 + 127.5 * v / scale), 0, 255).astype(np.uint8)


def weights_image(w, image_shape, enlarge=4):
    return enlarged(weights_pixels(w, image_shape), enlarge)



