"""Write one split in the course's HDF5 schema, a batch at a time, so memory stays bounded.

Besides the course's `<split>_set_x` (m, h, w, 3) uint8, `<split>_set_y` (m,) int64 and `list_classes`,
each example's provenance: `<split>_set_source` (its path relative to the data root) and
`<split>_set_sha256`; the settings used are the JSON attribute `settings`.

A full disk must end in an ordinary OSError, never inside HDF5: when a write fails in HDF5 (its chunk cache
and metadata cache write late, from inside other calls), the library is left in a broken state and the
interpreter segfaults when HDF5 closes the file at exit. So before each batch the disk space it could need
is reserved (fallocate), where a failure is ours to raise, and the batch is flushed at once, inside it.
"""
import ctypes
import ctypes.util
import errno
import json
import os

import h5py
import numpy as np

BATCH = 256  # images held in memory before they are appended to the file
SLACK = 1 << 20  # bytes reserved on top of a batch's estimate: HDF5's metadata and free-space bookkeeping
CHUNK_BYTES = 1 << 20  # the HDF5 chunk of <split>_set_x: about 1 MiB of whole examples


def chunk_rows(size):
    """Examples per HDF5 chunk of images of size (h, w): about CHUNK_BYTES, at least one."""
    return max(1, CHUNK_BYTES // (size[0] * size[1] * 3))


class SplitWriter:
    def __init__(self, path, split, classes, size, settings):
        try:
            self.f = h5py.File(path, "w")
        except OSError as e:  # h5py's message is a page of HDF5 internals, without the file name
            raise OSError(e.errno, os.strerror(e.errno) if e.errno else str(e), str(path)) from None
        self.split, self.batch = split, []
        self.path, self.chunk_bytes = path, max(1 << 20, size[0] * size[1] * 3)  # a chunk's bytes, at most
        try:  # before the datasets are made: else closing after a refusal would need space of its own
            self._reserve(0)
        except BaseException:
            self.close()
            raise
        h, w = size
        # uncompressed, in chunks of whole examples: photo pixels shrink by 7-14% under gzip or lzf, which costs
        # 10-40x the time to write and 5-11x to read back (docs/ingest.md), and training may re-read X every pass
        self.f.create_dataset(f"{split}_set_x", shape=(0, h, w, 3), maxshape=(None, h, w, 3), dtype=np.uint8,
                              chunks=(chunk_rows(size), h, w, 3))
        self.f.create_dataset(f"{split}_set_y", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        self.f.create_dataset(f"{split}_set_source", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                              chunks=(4096,))
        self.f.create_dataset(f"{split}_set_sha256", shape=(0,), maxshape=(None,), dtype="S64", chunks=(4096,))
        self.f.create_dataset("list_classes", data=np.array(classes, dtype="S"))  # class 0 first, as the course
        self.f.attrs["settings"] = json.dumps(settings, sort_keys=True)
        self.counts = [0, 0]

    def add(self, pixels, label, source, sha256):
        """Queue one example: pixels (h, w, 3) uint8, label 0 or 1."""
        self.batch.append((pixels, label, source, sha256))
        self.counts[label] += 1
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self):
        """Append the queued examples and flush them to disk; a full disk raises OSError naming the file."""
        if not self.batch:
            return
        pixels, labels, sources, digests = zip(*self.batch)
        # twice the bytes: the partly filled chunk may be written again elsewhere, with HDF5's bookkeeping
        self._reserve(2 * (sum(p.nbytes for p in pixels) + sum(len(s) + 80 for s in sources)) + self.chunk_bytes)
        columns = (np.stack(pixels), np.array(labels, dtype=np.int64), list(sources),
                   np.array(digests, dtype="S64"))
        for name, values in zip(("x", "y", "source", "sha256"), columns):
            d = self.f[f"{self.split}_set_{name}"]
            start = d.shape[0]
            d.resize(start + len(values), axis=0)
            d[start:] = values
        self.f.flush()  # everything HDF5 holds is written now, into the reserved space
        self.batch = []

    def close(self, discard=False):
        """Write the queued examples (unless discard: after an error) and close the file, whatever happens:
        after a flush HDF5 has nothing left to write, so closing cannot meet a full disk."""
        try:
            if not discard:
                self.flush()
        finally:
            self.batch = []
            self.f.close()
            os.truncate(self.path, os.path.getsize(self.path))  # gives back the blocks reserved past the end

    def _reserve(self, nbytes):
        """Allocate nbytes + SLACK past the end of the file (without changing its size) for HDF5 to write to."""
        fd = self.f.id.get_vfd_handle()
        reserve(fd, os.fstat(fd).st_size, nbytes + SLACK, self.path)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h


def reserve(fd, offset, length, path):
    """Make sure writes to [offset, offset + length) of the open file fd cannot fail for lack of space.

    Where fallocate is missing (not Linux, or a file system without it) the free space is checked instead.
    """
    if hasattr(_LIBC, "fallocate"):
        _LIBC.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        if _LIBC.fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise OSError(code, os.strerror(code), str(path))
    st = os.statvfs(path)
    if st.f_bavail * st.f_frsize < length:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

