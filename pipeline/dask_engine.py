"""train.engine dask: the primal solver's full-batch gradient descent, each gradient summed over a Dask array of
the training HDF5 chunks.

Workers read their own chunks of the training file by path (so the path must be the same on every worker: a
shared disk), keep them in memory as uint8, and each iteration returns per-chunk sums of dw, dZ and the loss;
the client adds them and takes the step of pipeline.solvers.primal, so the costs are the local solver's to
rounding. Only pipeline.train imports this module, and only when train.engine is dask.
"""
from pathlib import Path

import h5py
import numpy as np

from pipeline import PipelineError
from pipeline.features import scaled_block
from pipeline.model import sigmoid
from pipeline.solvers import descend
from pipeline.streaming import block_size, read_size

try:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster
except ImportError:
    raise PipelineError("train.engine dask needs Dask: pip install -e '.[dask]' "
                        "(or pip install 'dask[array]' distributed)") from None

CONNECT_SECONDS = 3  # how long to wait for train.scheduler before giving up
CHUNK_BYTES = 64 << 20  # a Dask chunk of images is at most this big (and at least train.chunk_size examples) ...
SPREAD = 8  # ... and at most 1/SPREAD of the examples, so that several workers share even a small set


class H5Rows:
    """The images of one HDF5 dataset, read on the worker that asks: what da.from_array slices. Pickles as its
    path and key, never as an open file."""

    def __init__(self, path, key, shape, dtype):
        self.path, self.key, self.shape, self.dtype, self.ndim = path, key, shape, np.dtype(dtype), len(shape)

    def __getitem__(self, index):
        with h5py.File(self.path, "r") as f:
            return f[self.key][index]


def chunk_rows(x, chunk_size):
    """Examples per Dask chunk of images x (m, h, w, 3): see CHUNK_BYTES and SPREAD, in whole HDF5 chunks."""
    m, n_x = x.shape[0], int(np.prod(x.shape[1:]))
    return read_size(x, max(chunk_size, min(-(-m // SPREAD), CHUNK_BYTES // n_x)))


def images_array(x, rows):
    """x (m, h, w, 3) uint8 as a Dask array (m, n_x) in chunks of `rows` examples: read by the workers from the
    file of an h5py Dataset, or sent from this process for an array in memory."""
    if isinstance(x, h5py.Dataset):
        x = H5Rows(str(Path(x.file.filename).resolve()), x.name, x.shape, x.dtype)
    m, n_x = x.shape[0], int(np.prod(x.shape[1:]))
    images = da.from_array(x, chunks=(rows, *x.shape[1:]), asarray=False, lock=False, inline_array=True)
    return images.reshape(m, n_x)  # (m, n_x) in chunks of whole rows: aligned with the labels' chunks


def chunk_sums(x, y, w, b, scaler, dtype):
    """For a chunk x (k, n_x) uint8 with labels y (k, 1): [X dZ.T, sum dZ, sum of losses] of shape
    (1, n_x + 2) float64, walking the chunk in cache-sized blocks as solvers.primal walks X."""
    dw, db, loss = np.zeros((x.shape[1], 1), dtype), 0.0, 0.0
    step = block_size(x.shape[1], dtype)
    for i in range(0, x.shape[0], step):
        X, Y = scaled_block(x[i:i + step], scaler, dtype), y[i:i + step].T  # (n_x, k), (1, k)
        Z = (w.T @ X + b).astype(np.float64)  # (1, k)
        dZ = sigmoid(Z) - Y
        dw += X @ dZ.T.astype(dtype, copy=False)  # (n_x, k) @ (k, 1)
        db, loss = db + float(np.sum(dZ)), loss + float(np.sum(np.logaddexp(0.0, Z) - Y * Z))
    return np.concatenate([dw[:, 0].astype(np.float64), [db, loss]])[None, :]


def connect(scheduler):
    """A Client of the scheduler at address `scheduler`, or of a new local cluster of worker processes when it
    is empty."""
    if not scheduler:
        return Client(LocalCluster(processes=True, threads_per_worker=1, dashboard_address=":0"))
    try:
        return Client(scheduler, timeout=CONNECT_SECONDS)
    except (OSError, ValueError, TypeError) as e:
        raise PipelineError(f"train.scheduler {scheduler}: cannot reach the Dask scheduler "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no answer'})") from None


def fit(chunks, Y, train_config, on_cost=None, on_step=None, monitor=None, weights=None):
    """Gradient descent on w as solvers.primal does it, for chunks a streaming.Chunks (its images, scaler and
    dtype) and Y (1, m); monitor(i, w, b) as in primal (early stopping). Returns w (n_x, 1) float64, b and the
    recorded costs."""
    if weights is not None:
        raise PipelineError("train.class_weight balanced is not supported with train.engine dask; "
                            "use train.engine local")
    n_x, m = chunks.shape
    dtype, l2 = chunks.dtype, train_config.l2
    client = connect(train_config.scheduler)
    try:
        rows = chunk_rows(chunks.x, train_config.chunk_size)
        x = client.persist(images_array(chunks.x, rows))  # each worker reads and keeps its chunks
        y = client.persist(da.from_array(Y.T.astype(np.float64), chunks=(rows, 1)))  # (m, 1)

        def gradient(p):
            w = dask.delayed(p["w"])  # one key sent once, not a copy in every task
            parts = da.map_blocks(chunk_sums, x, y, w, p["b"], chunks.scaler, dtype, dtype=np.float64,
                                  chunks=((1,) * x.numblocks[0], (n_x + 2,)))
            total = client.compute(parts.sum(axis=0)).result()  # (n_x + 2,), a tree sum on the workers
            dw, db, cost = total[:n_x, None] / m, total[n_x] / m, total[n_x + 1] / m
            if l2:
                cost += l2 / (2 * m) * float(np.vdot(p["w"], p["w"]))
                dw += (l2 / m) * p["w"]
            return {"w": dw, "b": float(db)}, float(cost)

        params = {"w": np.zeros((n_x, 1), dtype), "b": 0.0}
        watch = monitor and (lambda i, p: monitor(i, p["w"], p["b"]))
        costs = descend(gradient, params, train_config, on_cost, on_step, watch)
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
    return params["w"].astype(np.float64), params["b"], costs
