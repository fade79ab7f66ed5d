"""Read and validate datasets in the course's HDF5 schema.

A split file holds `<split>_set_x` (m, h, w, 3) uint8, `<split>_set_y` (m,) of 0/1 labels and
`list_classes` (2,) of byte strings, class 0 first: [b'non-cat', b'cat'] for the course data. A folder
dataset's file also holds `<split>_set_source` (m,), each image's path relative to the data root (UTF-8
strings, variable length): optional, the course files have none.

A file may come from anywhere, so every dataset is checked from its metadata before a byte of it is read:
links (soft, external) are not followed, virtual datasets and external storage (which read other files) are
refused, shapes, types and sizes must be what the schema says, and the class names plain printable text.
"""
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline import PipelineError
from pipeline.config import MAX_IMAGE_SIZE
from pipeline.names import CLASS_NAME_MAX, check_class_names
from pipeline.solvers import available_memory

COURSE_FILES = {"train": "train_catvnoncat.h5", "test": "test_catvnoncat.h5"}


@dataclass(frozen=True)
class Dataset:
    """One split: x of shape (m, h, w, 3) uint8, y of shape (1, m) int64, classes (name of 0, name of 1)."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple
    path: Path
    source: tuple = None  # each example's source file, relative to the data root (m,); None: not recorded

    @property
    def m(self):
        return self.x.shape[0]


def load_split(path, split, lazy=False):
    """Read `<split>_set_x`, `<split>_set_y` and `list_classes` from the HDF5 file at path, validated.

    lazy: x stays on disk as an h5py Dataset (the file stays open), read when sliced.
    """
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: no such file")
    if not path.is_file():
        raise PipelineError(f"{path}: not a regular file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise PipelineError(f"{path}: not an HDF5 file") from None
    try:
        x, y, classes = (_dataset(f, path, key) for key in (f"{split}_set_x", f"{split}_set_y", "list_classes"))
        _check_schema(path, split, x, y, classes)
        for ds in (x, y, classes):
            if not _stored(ds):
                raise PipelineError(f"{path}: '{ds.name.lstrip('/')}' declares {ds.shape} but the file does not "
                                    "hold that data (unwritten chunks); refused")
        x, y, classes = x if lazy else _read(path, x), _read(path, y), _read(path, classes)
        source = _sources(f, path, f"{split}_set_source", len(y))
    finally:
        if not lazy:
            f.close()
    if not np.isin(y, (0, 1)).all():
        raise PipelineError(f"{path}: {split}_set_y must hold only the labels 0 and 1")
    try:
        names = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in classes]
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: list_classes: class names must be UTF-8 text") from None
    names = check_class_names(names, f"{path}: list_classes")
    return Dataset(x=x, y=y.astype(np.int64).reshape(1, -1), classes=names, path=path,  # y: (m,) -> (1, m)
                   source=source)


SOURCE_MAX = 4096  # characters of one source path: longer is not a path this project wrote


def _sources(f, path, key, m):
    """The optional `<split>_set_source` of m strings as a tuple of str, or None when the file has none.

    Checked before it is read (shape, a string type) and as it is read, a block at a time (each entry UTF-8
    text of at most SOURCE_MAX characters): these become text on a page and in a CSV, never paths."""
    if key not in f:
        return None
    ds = _dataset(f, path, key)
    fixed = h5py.check_string_dtype(ds.dtype) is None  # variable-length strings, or fixed-length bytes
    if ds.shape != (m,) or (fixed and (ds.dtype.kind != "S" or ds.dtype.itemsize > SOURCE_MAX)):
        raise PipelineError(f"{path}: {key} must be {m} strings (one per example), got {ds.dtype} of shape {ds.shape}")
    found = []
    for start in range(0, m, 4096):  # a block at a time: an entry is checked before the next block is read
        for value in ds[start:start + 4096]:
            try:
                text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
            except UnicodeDecodeError:
                raise PipelineError(f"{path}: {key}[{len(found)}]: not UTF-8 text") from None
            if len(text) > SOURCE_MAX:
                raise PipelineError(f"{path}: {key}: an entry of {len(text)} characters, over the limit of "
                                    f"{SOURCE_MAX}")
            found.append(text)
    return tuple(found)


def _dataset(f, path, key):
    """f[key], an HDF5 dataset stored in this file: links are not followed and other files never read."""
    link = f.get(key, getlink=True)  # the link itself: a soft link loop or a dangling link is not resolved
    if link is None:
        raise PipelineError(f"{path}: missing dataset '{key}'")
    if not isinstance(link, h5py.HardLink):
        kind = "an external" if isinstance(link, h5py.ExternalLink) else "a soft"
        raise PipelineError(f"{path}: '{key}' is {kind} link; links are not followed, the data must be in the file")
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise PipelineError(f"{path}: missing dataset '{key}' (it is a group)")
    if ds.is_virtual or ds.external:
        raise PipelineError(f"{path}: '{key}' reads its data from other files (virtual or external storage); refused")
    return ds


def _stored(ds):
    """Whether every chunk (or the contiguous block) of ds is written in the file: a tiny file can declare
    terabytes of never-written examples, which would read as zeros for as long as training streams them."""
    if ds.size == 0:
        return True
    if ds.chunks is None:
        return ds.id.get_storage_size() > 0  # contiguous: allocated whole when written
    expected = math.prod(-(-n // c) for n, c in zip(ds.shape, ds.chunks))
    return ds.id.get_num_chunks() >= expected


def _check_schema(path, split, x, y, classes):
    """The course schema, checked on the datasets' metadata (nothing is read yet)."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise PipelineError(f"{path}: {split}_set_x must be uint8 of shape (m, h, w, 3), "
                            f"got {x.dtype} of shape {x.shape}")
    if x.shape[0] == 0:
        raise PipelineError(f"{path}: {split}_set_x holds no examples")
    if max(x.shape[1:3]) > MAX_IMAGE_SIZE:
        raise PipelineError(f"{path}: {split}_set_x holds images of {x.shape[1]}x{x.shape[2]} pixels, "
                            f"over the limit of {MAX_IMAGE_SIZE} on a side")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise PipelineError(f"{path}: {split}_set_y must have shape ({x.shape[0]},) to match {split}_set_x, "
                            f"got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise PipelineError(f"{path}: {split}_set_y must hold only the labels 0 and 1")
    if classes.shape != (2,) or classes.dtype.kind not in "SU" or classes.dtype.itemsize > 4 * CLASS_NAME_MAX:
        raise PipelineError(f"{path}: list_classes must be 2 strings, got {classes.dtype} of shape {classes.shape}")


def _read(path, ds):
    """The whole dataset ds in memory, refused when it would not fit (a small compressed file can declare
    terabytes of pixels)."""
    available = available_memory()
    if ds.nbytes > available:
        raise PipelineError(f"{path}: '{ds.name.lstrip('/')}' holds {ds.nbytes / 2**30:.1f} GiB, more than the "
                            f"{available / 2**30:.1f} GiB of memory available")
    return ds[()]


def load_course(data_dir, lazy_train=False):
    """Load the course's train and test splits from data_dir (lazy_train: see load_split); refuse a training
    set with a single class."""
    data_dir = Path(data_dir)
    for name in COURSE_FILES.values():
        if not (data_dir / name).exists():
            raise PipelineError(f"{data_dir / name}: no such file; get the course files with the fetch command "
                                f"(fetch --dest {data_dir}, or make data), or point data.dir at them")
    train = load_split(data_dir / COURSE_FILES["train"], "train", lazy_train)
    test = load_split(data_dir / COURSE_FILES["test"], "test")
    if train.y.min() == train.y.max():  # not np.unique: it imports numpy.ma, a few ms of every command
        raise PipelineError(f"{train.path}: train_set_y holds only the label {int(train.y[0, 0])}; "
                            "training needs examples of both classes")
    if test.classes != train.classes:
        raise PipelineError(f"{test.path}: list_classes {list(test.classes)} differ from the training file's "
                            f"{list(train.classes)}")
    if test.x.shape[1:] != train.x.shape[1:]:
        raise PipelineError(f"{test.path}: images are {test.x.shape[1:]}, but the training images are "
                            f"{train.x.shape[1:]}")
    return train, test
