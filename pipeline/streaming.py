"""Out-of-core training: the training images stay in their HDF5 file and are read chunk_size examples at a time.

Each iteration's cost and gradient are sums over the chunks (pipeline.solvers.primal walks them like the
blocks of an in-memory X), so peak memory is bounded by the chunk size, not by the number of examples m.
"""
import numpy as np

from pipeline import PipelineError
from pipeline import features as feats
from pipeline.solvers import available_memory

# bytes per pixel of in-memory training: the uint8 images, their float64 features and the scaled copy
IN_MEMORY_BYTES_PER_PIXEL = 1 + 8 + 8


def streams(train_config, m, n_x, available=None):
    """Whether training reads X (n_x, m) from HDF5 in chunks: train.streaming true, or auto and in-memory
    training would need more than half the available memory. Refuses train.solver gram when streaming."""
    setting = train_config.streaming
    if setting == "auto":
        available = available_memory() if available is None else available
        need = m * n_x * IN_MEMORY_BYTES_PER_PIXEL
        setting = need > available / 2
        why = f"the training set needs {need / 2**30:.1f} GiB in memory, {available / 2**30:.1f} GiB are available"
    else:
        why = "train.streaming is true"
    if setting and train_config.solver == "gram":
        raise PipelineError(f"train.solver gram needs the training set in memory, but it is streamed ({why}); "
                            "use train.solver primal or auto")
    return setting


def raw_chunks(x, chunk_size):
    """Yield (columns, X_chunk) for images x (m, h, w, 3) uint8 (an array or an h5py Dataset): each chunk of
    up to chunk_size examples read and flattened to shape (n_x, k) float64, unscaled."""
    m = x.shape[0]
    for j in range(0, m, chunk_size):
        cols = slice(j, min(j + chunk_size, m))
        yield cols, feats.flatten(x[cols])


class Chunks:
    """The scaled training features X (n_x, m) of images x (m, h, w, 3), read from x anew on every pass as
    (columns, X_chunk (n_x, k) in dtype) pairs: what solvers.primal walks."""

    def __init__(self, x, scaler, chunk_size, dtype="float64"):
        self.x, self.scaler, self.chunk_size, self.dtype = x, scaler, chunk_size, np.dtype(dtype)
        self.shape = (int(np.prod(x.shape[1:])), x.shape[0])  # (n_x, m)

    def __iter__(self):
        m = self.x.shape[0]
        for j in range(0, m, self.chunk_size):
            cols = slice(j, min(j + self.chunk_size, m))
            yield cols, feats.features(self.x[cols], self.scaler).astype(self.dtype, copy=False)


def fit_scaler(kind, x, chunk_size):
    """features.fit_scaler for images x (m, h, w, 3) read in chunks: two passes (mean, then std) for
    standardize, none for divide255."""
    if kind != "standardize":
        return feats.fit_scaler(kind, None)  # divide255 needs no statistics
    m = x.shape[0]
    mean = sum(X.sum(axis=1, keepdims=True) for _, X in raw_chunks(x, chunk_size)) / m  # (n_x, 1)
    var = sum(((X - mean) ** 2).sum(axis=1, keepdims=True) for _, X in raw_chunks(x, chunk_size)) / m
    return feats.standardizer(mean, np.sqrt(var))
