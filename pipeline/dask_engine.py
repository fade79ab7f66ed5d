"""train.engine dask: the primal solver's full-batch gradient descent (or L-BFGS), each gradient summed over a Dask
array of the training HDF5 chunks.

Workers read their own chunks of the training file by path (so the path must be the same on every worker: a
shared disk), keep them in memory as uint8, and each iteration returns per-chunk sums of dw, dZ and the loss;
the client adds them and takes the step of pipeline.solvers.primal, so the costs are the local solver's to
rounding. Only pipeline.train imports this module, and only when train.engine is dask.
"""
import contextlib
import pickle
import socket
import struct
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from pipeline import PipelineError
from pipeline.model import sigmoid
from pipeline.solvers import cost_curvature, descend_on, hessian_product, lbfgs
from pipeline.streaming import Chunks, read_size

try:
    import dask
    import dask.array as da
    import msgpack  # distributed's own wire format
    from distributed import Client, LocalCluster
    from distributed.comm.addressing import parse_address, parse_host_port
except ImportError:
    raise PipelineError("train.engine dask needs Dask: pip install -e '.[dask]' "
                        "(or pip install 'dask[array]' distributed)") from None

CONNECT_SECONDS = 3  # how long to wait for train.scheduler's handshake, then for the Client's registration
# the schemes whose handshake check_scheduler reads, bounded: tls, ws, wss, inproc and ucx are refused, since
# distributed waits for their handshake for ever (a silent ws:// listener hung train with no message)
CHECKED = ("tcp",)
HANDSHAKE_BYTES = 1 << 16  # a Dask handshake is under 100 bytes: an answer claiming more is not Dask
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


def chunk_sums(x, y, s, w, b, scaler, dtype):
    """For a chunk x (k, n_x) uint8 with labels y (k, 1) and weights s (k, 1) or None: [X dZ.T, sum dZ, sum of
    losses] of shape (1, n_x + 2) float64, walking the chunk in cache-sized blocks as solvers.primal walks X
    (streaming.Chunks over an array)."""
    dw, db, loss = np.zeros((x.shape[1], 1), dtype), 0.0, 0.0
    for cols, X in Chunks(x, scaler, len(x), dtype):  # X (n_x, k)
        Y = y[cols].T  # (1, k)
        Z = (w.T @ X + b).astype(np.float64)  # (1, k)
        dZ, losses = sigmoid(Z) - Y, np.logaddexp(0.0, Z) - Y * Z
        if s is not None:
            dZ, losses = dZ * s[cols].T, losses * s[cols].T
        dw += X @ dZ.T.astype(dtype, copy=False)  # (n_x, k) @ (k, 1)
        db, loss = db + float(np.sum(dZ)), loss + float(np.sum(losses))
    return np.concatenate([dw[:, 0].astype(np.float64), [db, loss]])[None, :]


def chunk_product(x, y, s, v, scaler, dtype):
    """For a chunk x (k, n_x) uint8 with weights s (k, 1) or None: its part of X1 S X1.T v
    (solvers.hessian_product) as (1, n_x + 1) float64."""
    return hessian_product(Chunks(x, scaler, len(x), dtype), v, None if s is None else s.T).T


def receive(sock, n, deadline):
    """Up to n bytes from sock, fewer only if the peer closes; TimeoutError at deadline (time.monotonic)."""
    data = b""
    while len(data) < n:
        if time.monotonic() >= deadline:  # a peer trickling bytes cannot keep it reading
            raise TimeoutError
        sock.settimeout(max(deadline - time.monotonic(), 1e-3))
        part = sock.recv(n - len(data))
        if not part:
            break
        data += part
    return data


def dask_message(message):
    """message (plain values) as distributed's tcp comm frames it: the byte count, then pack_frames of one
    msgpack frame."""
    frame = msgpack.packb(message, use_bin_type=True)
    framed = struct.pack("QQ", 1, len(frame)) + frame  # the number of frames and their lengths, then the frame
    return struct.pack("Q", len(framed)) + framed


def is_dask_handshake(framed):
    """Whether framed (the bytes after the byte count) is a Dask handshake: read as msgpack, never unpickled."""
    n, length = struct.unpack_from("QQ", framed)  # the number of frames, the first one's length
    if not 1 <= n < len(framed) // 8:
        return False
    try:
        message = msgpack.unpackb(framed[8 * (1 + n):8 * (1 + n) + length], raw=False)
    except (ValueError, msgpack.UnpackException):
        return False
    return isinstance(message, dict) and "pickle-protocol" in message


def check_scheduler(address):
    """Refuse address unless a Dask scheduler answers there within CONNECT_SECONDS.

    distributed's connect reads the scheduler's handshake without a timeout (by design: distributed/comm/core.py
    connect) and allocates whatever byte count its first 8 bytes claim (comm/tcp.py TCP.read): a silent listener
    hangs a Client for ever, an HTTP server makes it allocate exabytes. A scheduler sends its handshake first, so
    it is read here, bounded in time and size; only then is the client's sent (a real scheduler logs nothing).
    Only tcp:// can be checked so: every other scheme distributed accepts is refused (see CHECKED)."""
    scheme, location = parse_address(address)
    if scheme not in CHECKED:
        raise PipelineError(f"train.scheduler {address}: {scheme}:// is not supported, only tcp:// (a scheduler "
                            f"that never answers would hang training with no message: only tcp:// is checked "
                            f"first); reach a remote scheduler through an SSH tunnel to a tcp:// address")
    host, port = parse_host_port(location)
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:  # retried until the deadline, as distributed does, for a scheduler that is still starting
        try:
            sock = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 1e-3))
            break
        except OSError:
            if time.monotonic() + 0.1 >= deadline:
                raise
            time.sleep(0.1)
    with sock:
        answer = receive(sock, 8, deadline)
        size = struct.unpack("Q", answer)[0] if len(answer) == 8 else 0
        if 16 <= size <= HANDSHAKE_BYTES:
            answer += receive(sock, size, deadline)
            if len(answer) == 8 + size and is_dask_handshake(answer[8:]):
                sock.sendall(dask_message({"compression": None, "python": tuple(sys.version_info)[:3],
                                           "pickle-protocol": pickle.HIGHEST_PROTOCOL}))
                return
    said = f"its answer starts with {answer[:24]!r}" if answer else "it closed the connection without answering"
    raise PipelineError(f"train.scheduler {address}: not a Dask scheduler ({said})")


def connect(scheduler):
    """A Client of the scheduler at address `scheduler`, or of a new local cluster of worker processes when it
    is empty."""
    if not scheduler:
        # scheduler, workers and the scheduler's HTTP server (which it starts even without a dashboard) on the
        # loopback only, and no dashboard: it answers anyone who can reach it, unauthenticated (":0" meant 0.0.0.0)
        cluster = LocalCluster(processes=True, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False})
        try:
            return Client(cluster)
        except BaseException:
            cluster.close()
            raise
    try:
        check_scheduler(scheduler)
        return Client(scheduler, timeout=CONNECT_SECONDS)
    except TimeoutError:
        raise PipelineError(f"train.scheduler {scheduler}: cannot reach the Dask scheduler "
                            f"(no answer within {CONNECT_SECONDS} s)") from None
    except (OSError, ValueError, TypeError) as e:
        raise PipelineError(f"train.scheduler {scheduler}: cannot reach the Dask scheduler "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no answer'})") from None


@contextlib.contextmanager
def session(chunks, Y, train_config, weights=None):
    """A Session on the cluster train.scheduler names (a new local one when it is empty), closed afterwards."""
    client = connect(train_config.scheduler)
    try:
        yield Session(client, chunks, Y, train_config.chunk_size, weights)
    finally:
        cluster = client.cluster
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


class Session:
    """The training images of chunks (a streaming.Chunks: its images, scaler and dtype), labels Y (1, m) and
    weights (1, m) or None, held by the workers of client: each worker reads and keeps its own chunks once, for
    the curvature and for every iteration."""

    def __init__(self, client, chunks, Y, chunk_size, weights=None):
        self.client, self.chunks = client, chunks
        rows = chunk_rows(chunks.x, chunk_size)
        column = lambda a: client.persist(da.from_array(a.T.astype(np.float64), chunks=(rows, 1)))  # (m, 1)
        self.x = client.persist(images_array(chunks.x, rows))
        self.y, self.s = column(Y), None if weights is None else column(weights)

    def _sum(self, width, function, vector, *args):
        """Sum over the chunks of function(x, y, s, vector, *args), each a (1, width) row: a tree sum on the
        workers; vector is sent once, not with every task."""
        parts = da.map_blocks(function, self.x, self.y, self.s, dask.delayed(vector), *args, dtype=np.float64,
                              chunks=((1,) * self.x.numblocks[0], (width,)))
        return self.client.compute(parts.sum(axis=0)).result()

    def curvature(self, l2):
        """L of the cost (solvers.curvature), each product of the power iteration summed on the workers."""
        n_x, m = self.chunks.shape
        product = lambda v: self._sum(n_x + 1, chunk_product, v, self.chunks.scaler, self.chunks.dtype)[:, None]
        return cost_curvature(product, n_x, m, l2)

    def gradient(self, l2):
        """gradient(w, b) -> (J, dw (n_x, 1), db) as solvers.primal_gradient, each pass summed on the workers."""
        (n_x, m), dtype = self.chunks.shape, self.chunks.dtype

        def gradient(w, b):
            total = self._sum(n_x + 2, chunk_sums, w, b, self.chunks.scaler, dtype)  # (n_x + 2,)
            dw, db, cost = total[:n_x, None] / m, total[n_x] / m, total[n_x + 1] / m
            if l2:
                cost += l2 / (2 * m) * float(np.vdot(w, w))
                dw += (l2 / m) * w
            return float(cost), dw, float(db)
        return gradient

    def fit(self, train_config, on_cost=None, on_step=None, monitor=None, start=None):
        """Gradient descent on w as solvers.primal does it, or solvers.lbfgs (from start, a (w, b), if given);
        monitor(i, w, b) as in primal (early stopping). Returns a pipeline.train.Fit."""
        from pipeline.train import Fit

        n_x, gradient = self.chunks.shape[0], self.gradient(train_config.l2)
        if train_config.solver == "lbfgs":
            return Fit(*lbfgs(gradient, n_x, train_config, on_cost, on_step, monitor, start))
        w, b, costs = descend_on(gradient, n_x, train_config, on_cost, on_step, monitor)
        return Fit(w, b, costs, [k * train_config.print_every for k in range(len(costs))])
