"""Write one split in the course's HDF5 schema, a batch at a time, so memory stays bounded.

Besides the course's `<split>_set_x` (m, h, w, 3) uint8, `<split>_set_y` (m,) int64 and `list_classes`,
each example's provenance: `<split>_set_source` (its path relative to the data root) and
`<split>_set_sha256`; the settings used are the JSON attribute `settings`.
"""
import json

import h5py
import numpy as np

BATCH = 256  # images held in memory before they are appended to the file
CHUNK_BYTES = 1 << 20  # the HDF5 chunk of <split>_set_x: about 1 MiB of whole examples


def chunk_rows(size):
    """Examples per HDF5 chunk of images of size (h, w): about CHUNK_BYTES, at least one."""
    return max(1, CHUNK_BYTES // (size[0] * size[1] * 3))


class SplitWriter:
    def __init__(self, path, split, classes, size, settings):
        self.f = h5py.File(path, "w")
        self.split, self.batch = split, []
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
        if not self.batch:
            return
        pixels, labels, sources, digests = zip(*self.batch)
        columns = (np.stack(pixels), np.array(labels, dtype=np.int64), list(sources),
                   np.array(digests, dtype="S64"))
        for name, values in zip(("x", "y", "source", "sha256"), columns):
            d = self.f[f"{self.split}_set_{name}"]
            start = d.shape[0]
            d.resize(start + len(values), axis=0)
            d[start:] = values
        self.batch = []

    def close(self):
        self.flush()
        self.f.close()

