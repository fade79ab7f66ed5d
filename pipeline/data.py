"""Read and validate datasets in the course's HDF5 schema.

A split file holds `<split>_set_x` (m, h, w, 3) uint8, `<split>_set_y` (m,) of 0/1 labels and
`list_classes` (2,) of byte strings, class 0 first: [b'non-cat', b'cat'] for the course data.
"""
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline import PipelineError

COURSE_FILES = {"train": "train_catvnoncat.h5", "test": "test_catvnoncat.h5"}


@dataclass(frozen=True)
class Dataset:
    """One split: x of shape (m, h, w, 3) uint8, y of shape (1, m) int64, classes (name of 0, name of 1)."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple
    path: Path

    @property
    def m(self):
        return self.x.shape[0]


def load_split(path, split, lazy=False):
    """Read `<split>_set_x`, `<split>_set_y` and `list_classes` from the HDF5 file at path, validated.

    lazy: x stays on disk as an h5py Dataset (the file stays open), read when sliced.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise PipelineError(f"{path}: not an HDF5 file") from None
    try:
        x = _read(f, path, f"{split}_set_x", lazy)
        y = _read(f, path, f"{split}_set_y")
        classes = _read(f, path, "list_classes")
    finally:
        if not lazy:
            f.close()
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise PipelineError(f"{path}: {split}_set_x must be uint8 of shape (m, h, w, 3), "
                            f"got {x.dtype} of shape {x.shape}")
    if x.shape[0] == 0:
        raise PipelineError(f"{path}: {split}_set_x holds no examples")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise PipelineError(f"{path}: {split}_set_y must have shape ({x.shape[0]},) to match {split}_set_x, "
                            f"got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or not np.isin(y, (0, 1)).all():
        raise PipelineError(f"{path}: {split}_set_y must hold only the labels 0 and 1")
    if classes.shape != (2,) or classes.dtype.kind not in "SU":
        raise PipelineError(f"{path}: list_classes must be 2 strings, got {classes.dtype} of shape {classes.shape}")
    names = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in classes)
    return Dataset(x=x, y=y.astype(np.int64).reshape(1, -1), classes=names, path=path)  # y: (m,) -> (1, m)


def _read(f, path, key, lazy=False):
    if key not in f or not isinstance(f[key], h5py.Dataset):
        raise PipelineError(f"{path}: missing dataset '{key}'")
    return f[key] if lazy else f[key][()]


def load_course(data_dir, lazy_train=False):
    """Load the course's train and test splits from data_dir (lazy_train: see load_split); refuse a training
    set with a single class."""
    data_dir = Path(data_dir)
    train = load_split(data_dir / COURSE_FILES["train"], "train", lazy_train)
    test = load_split(data_dir / COURSE_FILES["test"], "test")
    if train.y.min() == train.y.max():  # not np.unique: it imports numpy.ma, a few ms of every command
        raise PipelineError(f"{train.path}: train_set_y holds only the label {int(train.y[0, 0])}; "
                            "training needs examples of both classes")
    if test.x.shape[1:] != train.x.shape[1:]:
        raise PipelineError(f"{test.path}: images are {test.x.shape[1:]}, but the training images are "
                            f"{train.x.shape[1:]}")
    return train, test
