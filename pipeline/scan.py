"""Find a folder dataset's images: one subfolder per class under data.root, and split them.

Every class folder is walked recursively (following symlinks; a loop or a folder that cannot be listed is a
skipped entry with its reason). Files whose extension is
not an image's, and hidden files (.DS_Store ...), are ignored and listed. The split is stratified and
deterministic: within each class the sorted files are shuffled by a generator seeded with
(data.split_seed, label), so a class's split does not depend on the other class's files. grouped_split,
which prepare calls once every image is decoded, keeps each group of exact or near duplicates (the audit's,
pipeline/audit.py) on one side, and finds the images a separate data.test_root shares with data.root.
"""
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.audit import duplicate_groups
from pipeline.images import IMAGE_SUFFIXES

SPLITS = ("train", "test", "val")
LEAKS_LISTED = 10  # pairs of files named in the warning about a leaking data.test_root


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


def split(entries, test_fraction, val_fraction, seed, groups=None):
    """Assign each entry a split name, stratified by label; returns a list parallel to entries.

    Within each label the entries are shuffled by a generator seeded with (seed, label) and dealt in turn: to
    test while it stays within half a group of its share of the label's images, else to validation likewise,
    else to training. groups[i] is entry i's group (default: one each): the first of a group to be dealt takes
    the whole group with it, so that copies of an image never sit on two sides. Without groups this is the
    plain shuffled split, and a few groups move only the entries dealt after them.
    """
    groups = range(len(entries)) if groups is None else groups
    members = {}  # group -> its entries
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    labels = [e.label for e in entries]
    names = [None] * len(entries)
    wanted, taken = {}, {}  # per label: images wanted and taken per side
    for label in (0, 1):
        n = labels.count(label)
        wanted[label] = {"test": round(n * test_fraction), "val": round(n * val_fraction)}
        taken[label] = {"test": 0, "val": 0, "train": 0}
    for label in (0, 1):
        idx = [i for i, y in enumerate(labels) if y == label]
        for j in np.random.default_rng([seed, label]).permutation(len(idx)):
            if names[idx[j]] is not None:  # dealt with its group
                continue
            group = members[groups[idx[j]]]
            size = sum(labels[i] == label for i in group)
            side = next((s for s in ("test", "val") if 2 * taken[label][s] + size <= 2 * wanted[label][s]), "train")
            for i in group:
                names[i] = side
                taken[labels[i]][side] += 1  # a member of the other label (a label conflict) counts there
    return names


def grouped_split(entries, n_root, prints, data, near_distance):
    """The split name of each entry, groups of duplicates on one side, and what prepare_report.json says of them.

    Images of data.test_root all go to test; a group holding images of both roots is a leak, listed (up to
    LEAKS_LISTED pairs) as `file of test_root = file of root`.
    """
    groups = duplicate_groups(prints, near_distance)
    test_fraction = 0.0 if n_root < len(entries) else data.test_fraction
    splits = split(entries[:n_root], test_fraction, data.val_fraction, data.split_seed, groups[:n_root])
    splits += ["test"] * (len(entries) - n_root)
    members = {}
    for k, g in enumerate(groups):
        members.setdefault(g, []).append(k)
    shared = [m for m in members.values() if len(m) > 1]
    leaks = [(k, m[0]) for m in shared if m[0] < n_root for k in m if k >= n_root]  # (test_root's, root's)
    roots = (Path(data.root), Path(data.test_root or data.root))
    return splits, {"groups": len(shared), "images": sum(map(len, shared)), "kept_together": not leaks,
                    "test_root_leaks": len(leaks),
                    "listed": [f"{roots[1] / entries[t].rel} = {roots[0] / entries[r].rel}"
                               for t, r in leaks[:LEAKS_LISTED]]}


def check_test_root(duplicates, data, strict, log):
    """Warn of (or, under --strict, refuse) images of data.test_root that data.root holds too."""
    n, listed = duplicates["test_root_leaks"], duplicates["listed"]
    if not n:
        return
    what = (f"{data.test_root}: {n} images of data.test_root are also in data.root (exact or near duplicates), "
            f"so the test score is flattered: {'; '.join(listed)}{'; ...' * (n > len(listed))}")
    if strict:
        raise PipelineError(f"{what}; --strict refuses a test set that leaks into training")
    log(f"warning: {what}")
