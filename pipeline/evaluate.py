"""Metrics and the misclassified gallery of a model on the train and test splits."""
import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.curves import auc, average_precision, both_classes, pr_curve, roc_curve
from pipeline.files import replace_dir, write_png, write_text
from pipeline.model import cross_entropy, sigmoid
from pipeline.names import inside, safe_name

GRID_COLUMNS = 8


def metrics(Y, Z, threshold):
    """Classification metrics from labels Y and logits Z, both of shape (1, m); cat (1) is the positive class.

    precision, recall and f1 are 0.0 when their denominator is 0. confusion is [[tn, fp], [fn, tp]]:
    rows are the true label, columns the predicted one.
    """
    pred = sigmoid(Z) > threshold  # (1, m)
    truth = Y == 1
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(~pred & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / Y.shape[1], "count": int(Y.shape[1]), "log_loss": cross_entropy(Z, Y),
            "precision": precision, "recall": recall, "f1": f1, "confusion": [[tn, fp], [fn, tp]]}


def lesson_accuracy(Y, Z, threshold):
    """Accuracy in percent computed as the lesson prints it: 100 - mean(|Y_prediction - Y|) * 100."""
    Y_prediction = (sigmoid(Z) > threshold).astype(np.float64)
    return 100 - np.mean(np.abs(Y_prediction - Y)) * 100


def evaluate(model, train, test, run_dir, enlarge=4, validation=None, logits=None, l2_path=None):
    """Write metrics.json and misclassified/ for model on the train, validation (if any) and test Datasets;
    return the metrics. A dict logits receives each split's Z (1, m), for the caller not to compute it again.
    l2_path (train.l2 auto's path, pipeline/l2path.py), if given, is written in metrics.json as it is."""
    run_dir = Path(run_dir)
    result, logits = {}, {} if logits is None else logits
    majority = majority_class(train.y)
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if split is not None:
            Z = logits[name] = model.logits(split.x)  # (1, m)
            result[name] = {**metrics(split.y, Z, model.threshold), **baselines(split.y, sigmoid(Z), majority)}
    if l2_path:
        result["l2_path"] = l2_path
    write_text(run_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    probs = sigmoid(logits["test"])  # (1, m)
    replace_dir(run_dir / "misclassified", lambda d: write_misclassified(d, test, probs, model, enlarge))
    return result


def majority_class(Y):
    """The label most common in Y (1, m) (0 on a tie): what always answering one class would answer."""
    return int(2 * int(np.sum(Y == 1)) > Y.shape[1])


def baselines(Y, P, majority):
    """majority_accuracy (always answering the training set's majority class), roc_auc and average_precision
    of probabilities P against labels Y, both (1, m); the last two are None when Y holds a single class."""
    result = {"majority_accuracy": float(np.mean(Y == majority)), "roc_auc": None, "average_precision": None}
    if both_classes(Y):
        result["roc_auc"] = auc(*roc_curve(Y, P))
        result["average_precision"] = average_precision(*pr_curve(Y, P))
    return result


def choose_threshold(Y, P, metric="accuracy"):
    """The threshold t maximising metric (accuracy, f1 or balanced_accuracy) of the predictions P > t against
    labels Y, both (1, m): every cut between two neighbouring distinct probabilities is tried (and one below
    and one above them all), each at the midpoint; among equal scores the cut closest to 0.5 wins."""
    y, p = Y.ravel() == 1, P.ravel()  # (1, m) -> (m,)
    order = np.argsort(p, kind="stable")
    y, p = y[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(p)), p.size - 1]  # index of the last example of each distinct probability
    fn = np.r_[0, np.cumsum(y)[last]]  # positives at or below each cut (k + 1 cuts for k distinct values)
    tn = np.r_[0, np.cumsum(~y)[last]]
    pos, neg = int(y.sum()), int((~y).sum())
    tp, fp = pos - fn, neg - tn
    cuts = np.r_[p[0] / 2, (p[last[:-1]] + p[last[:-1] + 1]) / 2, (p[-1] + 1) / 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = {"accuracy": (tp + tn) / p.size, "f1": 2 * tp / (2 * tp + fp + fn),
                 "balanced_accuracy": (tp / max(pos, 1) + tn / max(neg, 1)) / 2}[metric]
    score = np.nan_to_num(score)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    t = cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]]
    return float(np.clip(t, 1e-12, 1 - 1e-12))  # the threshold lives in (0, 1)


def write_misclassified(folder, test, probs, model, enlarge=4):
    """Each wrongly predicted test image as an enlarged PNG, index.csv (with each image's source file, relative
    to the data root; empty when the data does not record it), index.html of them all, surest first, and
    grid.png."""
    from pipeline.gallery import mistakes_page

    pred = (probs > model.threshold).astype(np.int64)  # (1, m)
    wrong = np.flatnonzero(pred[0] != test.y[0])
    rows, tiles, files = [], [], {}
    for i in wrong:
        true, guess, p = model.classes[test.y[0, i]], model.classes[pred[0, i]], float(probs[0, i])
        image = enlarged(test.x[i], enlarge)
        name = files[i] = f"test_{i:04d}_{safe_name(true)}_as_{safe_name(guess)}.png"  # class names are data
        write_png(inside(folder, name), image)
        rows.append({"index": int(i), "true_label": true, "predicted_label": guess, "probability": f"{p:.6f}",
                     "file": name, "source": test.source[i] if test.source else ""})
        tiles.append((image, f"#{i} true {true} p={p:.2f}"))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["index", "true_label", "predicted_label", "probability", "file", "source"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(Path(folder) / "index.csv", buf.getvalue())
    write_text(Path(folder) / "index.html", mistakes_page(test, probs, model, files))
    write_png(Path(folder) / "grid.png", _grid(tiles))


def enlarged(pixels, factor):
    """(h, w, 3) uint8 -> a Pillow image factor times larger, pixels kept square and sharp."""
    image = Image.fromarray(pixels, "RGB")
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _grid(tiles, caption_height=14):
    """Tile captioned images in rows of GRID_COLUMNS; an empty gallery is a small blank image."""
    if not tiles:
        return Image.new("RGB", (1, 1), "white")
    tw, th = tiles[0][0].size
    cols = min(GRID_COLUMNS, len(tiles))
    rows = -(-len(tiles) // cols)
    grid = Image.new("RGB", (cols * tw, rows * (th + caption_height)), "white")
    draw = ImageDraw.Draw(grid)
    for k, (image, caption) in enumerate(tiles):
        x, y = (k % cols) * tw, (k // cols) * (th + caption_height)
        grid.paste(image, (x, y))
        draw.text((x + 2, y + th + 1), caption, fill="black")
    return grid
