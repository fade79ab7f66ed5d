"""The library's loaders: images for notebooks, and a trained run as a fitted pipeline.Neuron.

Files and class folders become (m, h, w, 3) uint8 arrays through the one loader:
load_images reads files as predict does (pipeline/images.py: the same allow-list, fits, bombs refused);
load_folder walks a folder dataset as prepare does (pipeline/scan.py: one subfolder per class, hidden files
and non-image names left out). A bad file is a PipelineError naming it: nothing is skipped silently.
"""
import html
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


class Report:
    """A run's report.html: str() is the page, Jupyter shows it inline."""

    def __init__(self, path):
        self.path = Path(path)

    def __str__(self):
        return self.path.read_text(encoding="utf-8")

    def __repr__(self):
        return f"Report({str(self.path)!r})"

    def _repr_html_(self):
        return (f'<iframe srcdoc="{html.escape(str(self))}" style="width: 100%; height: 720px; border: 0" '
                f'title="{html.escape(str(self.path))}"></iframe>')


def load_run(path):
    """A fitted Neuron from a run folder or a model.npz: it takes raw 0..255 pixels as rows (m, h * w * 3)
    (load_images(...).reshape(m, -1)), applies the run's scaling (/255, or the stored mean and std) inside,
    and predicts with the run's threshold. From a run folder it also has the run's train settings as its
    parameters, costs_, n_iter_, converged_ and l2_ (the l2 used) as run.json records them, and
    report_html()."""
    from pipeline.artifacts import load_model, read_costs, read_record
    from pipeline.config import Config, load_config
    from pipeline.estimator import KEYS, Neuron  # scikit-learn: only here

    path = Path(path)
    model = load_model(path)
    folder = path if path.is_dir() else path.parent if path.name == "model.npz" else None
    run = folder if folder is not None and (folder / "config.yaml").is_file() else None  # else a model alone
    config = load_config(run / "config.yaml") if run else Config()
    params = {name: _value(config, key) for name, key in KEYS.items()}
    params.update(scaling=model.scaler.kind, threshold=model.threshold)
    neuron = Neuron(**params)
    neuron.classes_ = np.array(model.classes)
    neuron.coef_, neuron.intercept_ = model.w.T.copy(), np.array([model.b])  # (1, n_x), (1,)
    neuron.n_features_in_, neuron.scaler_, neuron.threshold_ = model.w.shape[0], model.scaler, model.threshold
    neuron.costs_ = read_costs(run / "costs.csv")[1] if run and (run / "costs.csv").is_file() else []
    training = (read_record(run) if run else {}).get("training", {})  # how the fit ended, as fit sets it
    neuron.n_iter_ = training.get("iterations", training.get("stopped_at"))
    neuron.converged_ = training.get("converged")
    neuron.l2_ = training.get("l2", config.train.l2)
    neuron.learning_rate_ = training.get("learning_rate", config.train.learning_rate)
    neuron._image, neuron._run_dir = (model.image_shape, model.fit, model.resample), run
    return neuron


def _value(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name, None)  # None: a key this config version does not have


def _size(size):
    """(h, w) from an int or a pair, each between 1 and MAX_IMAGE_SIZE."""
    from pipeline.config import MAX_IMAGE_SIZE

    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and 1 <= s <= MAX_IMAGE_SIZE for s in pair):
        raise PipelineError(f"size must be a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, or (h, w), "
                            f"got {size!r}")
    return pair
