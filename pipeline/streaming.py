"""Out-of-core training: the training images stay in their HDF5 file and are read chunk_size examples at a time.

Each iteration's cost and gradient are sums over blocks of examples (pipeline.solvers.primal walks them like the
blocks of an in-memory X), and each block is scaled and used for both the forward and the gradient product while
it is in cache: one pass over the data per iteration. The uint8 chunks read on the first pass are kept in memory
up to train.memory_budget MiB, so later passes read only the rest from disk; peak memory is bounded by the budget
and the chunk size, not by the number of examples m.
"""
import numpy as np

from pipeline import PipelineError
from pipeline import features as feats
from pipeline.solvers import available_memory

BLOCK_BYTES = 1 << 20  # a scaled block this big stays in the L2 cache between the forward and gradient products
MIB = 1 << 20


def in_memory_bytes_per_pixel(dtype):
    """Bytes per pixel of in-memory training: the uint8 images and one scaled copy of X in dtype."""
    return 1 + np.dtype(dtype).itemsize


def streams(train_config, m, n_x, available=None):
    """Whether training reads X (n_x, m) from HDF5 in chunks: train.streaming true, or auto and in-memory
    training would need more than half the available memory, or train.engine dask (whose workers read the
    file). Refuses train.solver gram when streaming."""
    setting = train_config.streaming
    if train_config.engine == "dask":
        if train_config.solver == "gram":
            raise PipelineError("train.engine dask runs the primal solver or lbfgs; "
                                "use train.solver primal, lbfgs or auto")
        return True
    if setting == "auto":
        available = available_memory() if available is None else available
        need = m * n_x * in_memory_bytes_per_pixel(train_config.dtype)
        setting = need > available / 2
        why = f"the training set needs {need / 2**30:.1f} GiB in memory, {available / 2**30:.1f} GiB are available"
    else:
        why = "train.streaming is true"
    if setting and train_config.solver == "gram":
        raise PipelineError(f"train.solver gram needs the training set in memory, but it is streamed ({why}); "
                            "use train.solver primal or auto")
    return setting


def read_size(x, chunk_size):
    """Examples per read of x (m, h, w, 3): chunk_size, rounded up to whole HDF5 chunks of an h5py Dataset so
    that no stored chunk is read (or decompressed) twice in one pass."""
    stored = getattr(x, "chunks", None)
    rows = stored[0] if stored else 1
    return max(rows, -(-chunk_size // rows) * rows)


def block_size(n_x, dtype):
    """Examples per scaled block of n_x features in dtype: about BLOCK_BYTES."""
    return max(1, BLOCK_BYTES // (n_x * np.dtype(dtype).itemsize))


class Chunks:
    """The scaled training features X (n_x, m) of images x (m, h, w, 3), an array or an h5py Dataset, walked as
    (columns, X_block (n_x, k) in dtype) pairs on every pass: what solvers.primal walks.

    x is read chunk_size examples at a time (see read_size); the chunks read on the first pass are kept, up to
    budget bytes, and served from memory on the next passes.
    """

    def __init__(self, x, scaler, chunk_size, dtype="float64", budget=0):
        self.x, self.scaler, self.dtype = x, scaler, np.dtype(dtype)
        self.shape = (int(np.prod(x.shape[1:])), x.shape[0])  # (n_x, m)
        self.read, self.block = read_size(x, chunk_size), block_size(self.shape[0], dtype)
        self.budget, self.kept = budget, {}  # first example -> (k, h, w, 3) uint8 chunk

    def chunks(self):
        """Yield (first example, (k, h, w, 3) uint8 chunk) over x, from memory where kept."""
        m, in_memory = self.x.shape[0], isinstance(self.x, np.ndarray)
        for j in range(0, m, self.read):
            chunk = self.kept.get(j)
            if chunk is None:
                chunk = self.x[j:j + self.read]  # a view of an array; read (and decompressed) from HDF5
                if not in_memory and chunk.nbytes * (len(self.kept) + 1) <= self.budget:
                    self.kept[j] = chunk
            yield j, chunk

    def __iter__(self):
        for j, chunk in self.chunks():
            for i in range(0, chunk.shape[0], self.block):
                piece = chunk[i:i + self.block]
                yield slice(j + i, j + i + piece.shape[0]), feats.scaled_block(piece, self.scaler, self.dtype)

    def materialize(self):
        """The whole X (n_x, m) in dtype, Fortran-ordered, filled block by block: the one copy of in-memory
        training."""
        X = np.empty(self.shape, self.dtype, order="F")  # columns contiguous, as solvers.in_memory_blocks wants
        for cols, block in self:
            X[:, cols] = block
        return X


def fit_scaler(kind, x, chunk_size):
    """features.fit_scaler for images x (m, h, w, 3) read in chunks: two passes (mean, then std) for
    standardize, none for divide255. Sums are taken over blocks of about BLOCK_BYTES of float64."""
    if kind != "standardize":
        return feats.fit_scaler(kind, None)  # divide255 needs no statistics
    n_x, m = int(np.prod(x.shape[1:])), x.shape[0]
    reader = Chunks(x, None, chunk_size)

    def total(f):  # sum over examples of f(X), X the unscaled features (n_x, k) of a block
        s = np.zeros((n_x, 1))
        for _, chunk in reader.chunks():
            for i in range(0, chunk.shape[0], reader.block):
                s += f(feats.flatten(chunk[i:i + reader.block])).sum(axis=1, keepdims=True)
        return s

    mean = total(lambda X: X) / m  # (n_x, 1)
    return feats.standardizer(mean, np.sqrt(total(lambda X: (X - mean) ** 2) / m))
