"""Find a folder dataset's images: one subfolder per class under data.root, and split them.

Every class folder is walked recursively (following symlinks; a loop or a folder that cannot be listed is a
skipped entry with its reason). Files whose extension is
not an image's, and hidden files (.DS_Store ...), are ignored and listed. The split is stratified and
deterministic: within each class the sorted files are shuffled by a generator seeded with
(data.split_seed, label), so a class's split does not depend on the other class's files.
"""
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.images import IMAGE_SUFFIXES

SPLITS = ("train", "test", "val")


@dataclass(frozen=True)
class Entry:
    """One image file: its path, its path relative to its root (for provenance), label, size and mtime."""

    path: Path
    rel: str
    label: int
    size: int
    mtime_ns: int
    problem: str = ""  # why this entry cannot be read at all (a folder that cannot be listed, a symlink loop)


def class_names(data):
    """(negative folder names, positive folder names) from data.negative and data.positive."""
    negative = [n.strip() for n in data.negative.split(",")]
    positive = [n.strip() for n in data.positive.split(",")]
    both = set(negative) & set(positive)
    if both:
        raise PipelineError(f"data.positive and data.negative both name the folder '{sorted(both)[0]}'")
    return negative, positive


def scan(root, data):
    """List root's images per class. Returns (entries sorted by rel, ignored rel paths sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(f"{root}: no such folder (data.root or data.test_root); make it, with one subfolder "
                            "per class (cat/ and non-cat/ by default), or point data.root at your images")
    negative, positive = class_names(data)
    entries, ignored = [], []
    for label, names in ((0, negative), (1, positive)):
        found = 0
        for name in names:
            folder = root / name
            if not folder.is_dir():
                present = sorted(p.name for p in root.iterdir() if p.is_dir()) or ["none"]
                raise PipelineError(f"{folder}: class folder missing; both classes need a folder "
                                    f"(data.positive: {data.positive}, data.negative: {data.negative}; "
                                    f"folders found: {', '.join(present)})")
            for path, problem in walk(folder):
                rel = path.relative_to(root).as_posix()
                if problem:  # skipped with its reason, as an unreadable file is (--strict refuses it)
                    entries.append(Entry(path, rel, label, 0, 0, problem))
                    continue
                if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                    ignored.append(rel)
                    continue
                try:
                    st = path.stat()
                    size, mtime_ns, regular = st.st_size, st.st_mtime_ns, stat.S_ISREG(st.st_mode)
                except OSError:  # a broken symlink: listed all the same, so that prepare names it as skipped
                    size = mtime_ns = regular = 0
                entries.append(Entry(path, rel, label, size, mtime_ns))
                found += regular  # a FIFO or a broken link alone is no image: "holds no image files"
        if not found:
            raise PipelineError(f"{root / names[0]}: class folder holds no image files")
    return sorted(entries, key=lambda e: e.rel), sorted(ignored)


def walk(folder):
    """(path, problem) for every entry under folder that is not a folder, following symlinks (FIFOs, devices
    and broken links too: prepare skips them, naming them, rather than leave them unmentioned), problem "";
    and for a folder that cannot be listed or a symlink back to a folder above, (its path, why), its walk
    going on without it."""
    def visit(path, ancestors):
        real = os.path.realpath(path)
        if real in ancestors:
            yield Path(path), "symlink loop (it leads back to a folder above it)"
            return
        try:
            children = sorted(os.scandir(path), key=lambda d: d.name)
        except OSError as e:
            yield Path(path), f"unreadable folder ({e.strerror or e})"
            return
        for child in children:
            if child.is_dir():
                yield from visit(child.path, ancestors | {real})
            else:
                yield Path(child.path), ""
    yield from visit(folder, frozenset())


def split(entries, test_fraction, val_fraction, seed):
    """Assign each entry a split name, stratified by label; returns a list parallel to entries."""
    names = ["train"] * len(entries)
    for label in (0, 1):
        idx = [i for i, e in enumerate(entries) if e.label == label]
        order = np.random.default_rng([seed, label]).permutation(len(idx))
        n_test = round(len(idx) * test_fraction)
        n_val = round(len(idx) * val_fraction)
        for k, j in enumerate(order):
            if k < n_test:
                names[idx[j]] = "test"
            elif k < n_test + n_val:
                names[idx[j]] = "val"
    return names
