"""The report's galleries of test images: the surest mistakes (all of them on misclassified/index.html), and the
most and least confident correct predictions. Each caption names the image's source file and says how its
probability compares with the threshold."""
from html import escape

import numpy as np
from PIL import Image

from pipeline import page
from pipeline.files import png_bytes

SHOWN_CONFIDENT = 6  # how many of the most (and of the least) confident correct predictions are shown
SHOWN_MISTAKES = 24  # mistakes shown in the report, surest first; misclassified/index.html has them all
TILE = 160  # pixels a gallery image is shown at: six to a row of the report's column


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


def versus(p, threshold, answer):
    """'p = 0.503 < threshold 0.505 → non-cat': digits enough for p and the threshold to read differently."""
    above = p > threshold
    for digits in range(3, 8):
        a, t = f"{p:.{digits}f}", f"{threshold:.{digits}f}"
        if a != t:
            break
    return f"p = {a} {'>' if above else '<' if a != t else '≤'} threshold {t} → {answer}"


def image_name(test_set, i):
    """Test image i by its source file, or "test image #i" where the dataset records none (the course's)."""
    return test_set.source[i] if test_set.source and test_set.source[i] else f"test image #{i}"


def caption(test_set, i, p, pred, model):
    """Test image i's caption: its source file (or #i), its true class, and p against the threshold."""
    name = image_name(test_set, i)
    return name, f"true {model.classes[test_set.y[0, i]]}; {versus(p[i], model.threshold, model.classes[pred[i]])}"


def galleries(test_set, P, model):
    """The surest misclassified test images (at most SHOWN_MISTAKES, linking to misclassified/index.html
    for all of them) and the most and least confident correct ones."""
    p, pred, wrong, right = ranked(test_set, P, model)
    shown = lambda idx: '<div class="gallery">' + "".join(tile(test_set, i, p, pred, model) for i in idx) + "</div>"
    n = min(SHOWN_CONFIDENT, len(right) // 2)
    where = (f'{page.link("misclassified/index.html", "misclassified/index.html")} '
             f'(and {page.link("misclassified/index.csv", "misclassified/index.csv")})')
    every = (f"<p>The {SHOWN_MISTAKES} surest, surest first; all {len(wrong)} on {where}.</p>"
             if len(wrong) > SHOWN_MISTAKES else f"<p>Surest first; also on {where}.</p>")
    return [page.section("misclassified", f"Misclassified test images ({len(wrong)} of {test_set.m})",
                         *((every, shown(wrong[:SHOWN_MISTAKES])) if len(wrong) else
                           (page.paragraph("None: every test image is right."),))),
            page.section("confident", "Correct predictions: the most and the least confident",
                         "<h3>most confident</h3>", shown(right[:n]), "<h3>least confident</h3>",
                         shown(right[len(right) - n:][::-1]))]


def tile(test_set, i, p, pred, model):
    image = png_bytes(Image.fromarray(test_set.x[i], "RGB"))  # shown enlarged by the browser, pixels kept sharp
    name, words = caption(test_set, i, p, pred, model)
    return page.figure(page.img(image, "image/png", f"{name}: {words}", width=TILE, css_class="pixels"),
                       name, words)


def mistakes_page(test_set, P, model, files):
    """misclassified/index.html: every mistake, surest first, each shown from its PNG in that folder (files:
    {test index: file name}), so that the page stays light however many there are."""
    p, pred, wrong, _ = ranked(test_set, P, model)
    figures = [page.figure(f'<img src="{escape(files[i])}" alt="{escape(name)}" width="{TILE}" '
                           f'class="pixels" loading="lazy">', name, words)
               for i in wrong for name, words in [caption(test_set, i, p, pred, model)]]
    return page.document(f"Misclassified test images ({len(wrong)} of {test_set.m})",
                         page.paragraph("Surest mistakes first. The same list, with each image's index, is in "
                                        "index.csv."),
                         '<div class="gallery">' + "".join(figures) + "</div>")
