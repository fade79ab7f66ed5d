"""Run folders and the model file: everything a run writes, described well enough to be reused alone."""
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.features import SCALINGS, Scaler, features
from pipeline.files import write_bytes
from pipeline.model import sigmoid

RUNS_ROOT = Path("runs")


@dataclass(frozen=True)
class Model:
    """A trained neuron and what it needs to turn images into features the way training did.

    w is (n_x, 1), b a float, image_shape (h, w, 3) with n_x = h*w*3, classes (name of 0, name of 1).
    """

    w: np.ndarray
    b: float
    image_shape: tuple
    scaler: Scaler
    classes: tuple
    threshold: float

    def logits(self, x, chunk_size=1024):
        """Images (m, h, w, 3) uint8 -> Z = w.T X + b, of shape (1, m).

        x may be an h5py Dataset; it is read chunk_size images at a time, so memory stays bounded.
        """
        chunks = (features(x[j:j + chunk_size], self.scaler) for j in range(0, x.shape[0], chunk_size))
        return np.concatenate([self.w.T @ X + self.b for X in chunks], axis=1)  # (1, k) pieces -> (1, m)

    def predict_proba(self, x):
        """Images (m, h, w, 3) uint8 -> probabilities of class 1, of shape (1, m)."""
        return sigmoid(self.logits(x))


def save_model(path, model):
    buf = io.BytesIO()
    np.savez(buf, w=model.w, b=np.float64(model.b), image_shape=np.array(model.image_shape, dtype=np.int64),
             scaling=np.str_(model.scaler.kind), mean=model.scaler.mean, std=model.scaler.std,
             classes=np.array(model.classes, dtype=str), threshold=np.float64(model.threshold))
    write_bytes(path, buf.getvalue())


MODEL_KEYS = ("w", "b", "image_shape", "scaling", "mean", "std", "classes", "threshold")


def load_model(path):
    """Load and check a model.npz written by save_model; never unpickles anything."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise PipelineError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in MODEL_KEYS if k not in npz.files]
            if missing:
                raise PipelineError(f"{path}: not a model of this pipeline: missing {', '.join(missing)}")
            a = {k: npz[k] for k in MODEL_KEYS}
    except (zipfile.BadZipFile, OSError, EOFError):
        raise PipelineError(f"{path}: not a model file (.npz)") from None
    except ValueError as e:  # object arrays (pickles) are refused by allow_pickle=False
        raise PipelineError(f"{path}: refused: {e}") from None
    shape = tuple(int(s) for s in a["image_shape"])
    n_x = int(np.prod(shape)) if shape else 0
    kind = str(a["scaling"])
    if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
        raise PipelineError(f"{path}: image_shape must be (h, w, 3), got {shape}")
    if a["w"].shape != (n_x, 1):
        raise PipelineError(f"{path}: w must have shape ({n_x}, 1) for images of {shape}, got {a['w'].shape}")
    if kind not in SCALINGS:
        raise PipelineError(f"{path}: unknown scaling '{kind}'")
    want = (n_x, 1) if kind == "standardize" else (0, 1)
    if a["mean"].shape != want or a["std"].shape != want:
        raise PipelineError(f"{path}: mean and std must have shape {want} for scaling '{kind}'")
    if a["classes"].shape != (2,):
        raise PipelineError(f"{path}: classes must hold 2 names, got shape {a['classes'].shape}")
    return Model(w=a["w"].astype(np.float64), b=float(a["b"]), image_shape=shape,
                 scaler=Scaler(kind, a["mean"], a["std"]), classes=tuple(str(c) for c in a["classes"]),
                 threshold=float(a["threshold"]))


def new_run_dir(name, run_dir=None):
    """Create and return the run folder: run_dir if given (it must be new or empty), else runs/<name>-<time>."""
    if run_dir is not None:
        run_dir = Path(run_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise PipelineError(f"{run_dir}: already exists and is not an empty folder; "
                                "choose another --run-dir or remove it")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    stem = RUNS_ROOT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        candidate = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise PipelineError(f"{stem}: too many runs with this name in the same second")


def latest_run(root=RUNS_ROOT):
    """The run folder under root whose model.npz was written last."""
    models = sorted(Path(root).glob("*/model.npz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise PipelineError(f"{root}: no run with a model.npz found; train one first (make train)")
    return models[-1].parent
