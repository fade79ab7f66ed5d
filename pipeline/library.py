"""Images for notebooks: files and class folders -> (m, h, w, 3) uint8 arrays, through the one loader.

load_images reads files as predict does (pipeline/images.py: the same allow-list, fits, bombs refused);
load_folder walks a folder dataset as prepare does (pipeline/scan.py: one subfolder per class, hidden files
and non-image names left out). A bad file is a PipelineError naming it: nothing is skipped silently.
"""
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.images import FITS, RESAMPLES, load_image


def load_images(paths, size=64, fit="squash", resample="bilinear"):
    """The image files at paths as an array of shape (m, h, w, 3) uint8; size is h = w, or (h, w).

    As rows for a Neuron: load_images(paths).reshape(m, -1), shape (m, h * w * 3)."""
    h, w = _size(size)
    if fit not in FITS:
        raise PipelineError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if resample not in RESAMPLES:
        raise PipelineError(f"resample must be one of {', '.join(RESAMPLES)}, got {resample!r}")
    if isinstance(paths, (str, Path)):
        paths = [paths]  # one file, not the characters of its name
    x = np.zeros((len(paths), h, w, 3), np.uint8)
    for k, path in enumerate(paths):
        x[k] = load_image(Path(path), (h, w), fit, resample)  # (h, w, 3)
    return x


def load_folder(root, positive="cat", negative="non-cat", size=64, fit="squash", resample="bilinear"):
    """(x, y, paths) of the folder dataset under root: x (m, h, w, 3) uint8, y (m,) with 1 for the images
    under the positive class folders and 0 for the negative ones, paths their files, sorted as prepare
    sorts them. positive and negative are folder names, several separated by commas (data.positive)."""
    from pipeline.config import Config, with_values
    from pipeline.scan import scan

    data = with_values(Config(), {"data.positive": positive, "data.negative": negative}, "load_folder").data
    entries, _ = scan(root, data)
    paths = [e.path for e in entries]
    return load_images(paths, size, fit, resample), np.array([e.label for e in entries], np.int64), paths


def _size(size):
    """(h, w) from an int or a pair, each between 1 and MAX_IMAGE_SIZE."""
    from pipeline.config import MAX_IMAGE_SIZE

    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and 1 <= s <= MAX_IMAGE_SIZE for s in pair):
        raise PipelineError(f"size must be a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, or (h, w), "
                            f"got {size!r}")
    return pair
