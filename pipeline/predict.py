"""The predict stage: image files and folders -> cat/non-cat with a probability, through a trained model.

Each image goes through pipeline/images.py with the model's own size, fit and resample filter (unless told
otherwise), so a PNG of a training image gives exactly the probability the run computed for it.
"""
import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline import PipelineError
from pipeline.files import write_png
from pipeline.images import IMAGE_SUFFIXES, load_image
from pipeline.model import sigmoid
from pipeline.names import inside, printable, safe_name
from pipeline.scan import walk

BATCH = 64  # images scored together (each by its own product: see classify)


@dataclass(frozen=True)
class Result:
    path: str
    label: str
    probability: float


def find_images(paths):
    """Expand the user's PATHs: a file stays as given (whatever its name), a folder becomes the image files
    under it (by suffix, recursively, hidden ones left out), sorted.

    Returns (images, problems, skipped): problems are PipelineErrors for folders holding no image, folders that
    cannot be listed and symlink loops, skipped the
    files under a folder whose suffix is not an image's.
    """
    images, problems, skipped = [], [], []
    for path in map(Path, paths):
        if not path.is_dir():
            images.append(path)  # load_image names what is wrong with a missing or unreadable file
            continue
        # not only regular files: a FIFO or a device named like an image is refused by load_image, by name; a
        # folder that cannot be listed or a symlink loop is a problem named, not images silently missed
        files = []  # walk gives them sorted
        for f, problem in walk(path):
            if not any(part.startswith(".") for part in f.relative_to(path).parts):
                if problem:
                    problems.append(PipelineError(f"{f}: {problem}"))
                else:
                    files.append(f)
        found = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
        skipped += [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
        images += found
        if not found:
            problems.append(PipelineError(f"{path}: no image files in this folder"))
    return images, problems, skipped


def classify(model, x, threshold):
    """Images x of shape (m, h, w, 3) uint8 -> (probabilities (1, m), labels: m class names).

    Each image's logit is its own (1, n_x) @ (n_x, 1) product: BLAS may sum a wider product in another order,
    and an image's probability must not depend on the images beside it (one file or a folder, --explain and
    serve give the same bits)."""
    probs = sigmoid(np.concatenate([model.logits(x[i:i + 1]) for i in range(x.shape[0])], axis=1))  # (1, m)
    return probs, [model.classes[int(p > threshold)] for p in probs[0]]


def predict_files(model, images, fit, resample, threshold, save_input=None, seen=None):
    """Yield (path, Result or PipelineError) for each image file; a bad file never stops the rest.

    Refusals come as soon as a file is read, results BATCH at a time (scoring is about 17 microseconds an image,
    decoding milliseconds).
    With save_input, the (h, w, 3) pixels the model saw are written there as <k>_<name>.png (k: the position).
    seen(k, path, pixels), if given, is called with each image read (predict --explain draws it).
    """
    h, w, _ = model.image_shape
    pending = []  # (path, pixels) waiting for the next matrix product
    for k, path in enumerate(images):
        try:
            pixels = load_image(path, (h, w), fit, resample)  # (h, w, 3)
        except PipelineError as e:
            yield path, e
            continue
        if save_input is not None:
            write_png(inside(save_input, f"{k:05d}_{safe_name(path.stem)}.png"), Image.fromarray(pixels, "RGB"))
        pending.append((path, pixels))
        if seen is not None:
            seen(k, path, pixels)
        if len(pending) == BATCH:
            yield from _score(model, pending, threshold)
            pending = []
    yield from _score(model, pending, threshold)


def _score(model, pending, threshold):
    if not pending:
        return
    probs, labels = classify(model, np.stack([pixels for _, pixels in pending]), threshold)  # (m, h, w, 3)
    for (path, _), p, label in zip(pending, probs[0], labels):
        yield path, Result(str(path), label, float(p))


def human_line(result):
    return printable(f"{result.path}: {result.label} (p={result.probability:.3f})")  # a name cannot forge a line


def to_json(results):
    """One JSON document: a list of {path, label, probability}, probabilities at full precision."""
    # load_model's checks keep every probability a number; allow_nan=False makes sure NaN, which is not JSON,
    # is never printed
    return json.dumps([asdict(r) for r in results], indent=2, allow_nan=False) + "\n"


def to_csv(results):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["path", "label", "probability"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in results)
    return buf.getvalue()
