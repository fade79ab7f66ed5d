"""The report's galleries of test images: the mistakes, and the most and least confident correct predictions."""
import numpy as np
from PIL import Image

from pipeline import page
from pipeline.files import png_bytes

SHOWN_CONFIDENT = 6  # how many of the most (and of the least) confident correct predictions are shown


def ranked(test_set, P, model):
    """(p (m,), predictions (m,), the wrong test images' indices, the right ones'), each list surest first
    (ties in index order), from the probabilities P (1, m)."""
    p = P[0]  # (1, m) -> (m,)
    pred = (p > model.threshold).astype(np.int64)
    confidence = np.where(pred == 1, p, 1 - p)
    wrong = np.flatnonzero(pred != test_set.y[0])
    right = np.flatnonzero(pred == test_set.y[0])
    return (p, pred, wrong[np.argsort(-confidence[wrong], kind="stable")],
            right[np.argsort(-confidence[right], kind="stable")])


def galleries(test_set, P, model, enlarge):
    """The misclassified test images (surest mistakes first) and the most and least confident correct ones."""
    p, pred, wrong, right = ranked(test_set, P, model)
    shown = lambda idx: '<div class="gallery">' + "".join(tile(test_set, i, p, pred, model, enlarge)
                                                          for i in idx) + "</div>"
    n = min(SHOWN_CONFIDENT, len(right) // 2)
    return [page.section("misclassified", f"Misclassified test images ({len(wrong)} of {test_set.m})",
                         shown(wrong) if len(wrong) else page.paragraph("None: every test image is right.")),
            page.section("confident", "Correct predictions: the most and the least confident",
                         "<h3>most confident</h3>", shown(right[:n]), "<h3>least confident</h3>",
                         shown(right[len(right) - n:][::-1]))]


def tile(test_set, i, p, pred, model, enlarge):
    image = png_bytes(Image.fromarray(test_set.x[i], "RGB"))  # shown enlarged by the browser, pixels kept sharp
    caption = (f"#{i}: true {model.classes[test_set.y[0, i]]}, predicted {model.classes[pred[i]]}, "
               f"p({model.classes[1]}) = {p[i]:.3f}")
    width = test_set.x.shape[2] * enlarge
    return page.figure(page.img(image, "image/png", caption, width=width, css_class="pixels"), caption)
