"""The data audit: class balance per split, exact and near duplicates within and across splits.

An exact duplicate is an image with the same pixels as another (at the prepared size); one in two splits is
a leak of test data into training. A near duplicate is a pair whose 16x16 thumbnails differ by less than
audit.near_distance in root-mean-square, pixel values scaled to 0..1. Duplicates whose labels differ are
flagged as label conflicts.
"""
import hashlib
from collections import defaultdict

import numpy as np
from PIL import Image

THUMB = 16  # thumbnail side for the near-duplicate distance
BLOCK = 1024  # rows of the pairwise distance matrix computed at a time ...
BLOCK_COLUMNS = 4096  # ... against this many columns: 16 MiB of float32 distances, and at most a few hundred MiB
# of indices when every one of them is a near pair, whatever the number of images
LISTED = 1000  # at most this many groups or pairs are listed (all are counted)


def audit(splits, classes, near_distance=0.02):
    """splits: {name: (x (m, h, w, 3) uint8, y (1, m), sources or None)}, classes (name of 0, name of 1).

    Returns a JSON-able dict: balance, exact_duplicates, near_duplicates (each listed up to LISTED).
    """
    return audit_fingerprints({s: (y, sources, [fingerprint(x[i]) for i in range(x.shape[0])])
                               for s, (x, y, sources) in splits.items()}, classes, near_distance)


def fingerprint(pixels):
    """What the audit compares of one image (h, w, 3) uint8: (sha256 hex of its pixels, its thumbnail)."""
    return hashlib.sha256(pixels.tobytes()).hexdigest(), thumbnail(pixels)


def audit_fingerprints(splits, classes, near_distance=0.02):
    """audit() from fingerprints computed beforehand (prepare's workers compute them beside the decoding):
    splits {name: (y (1, m), sources or None, m fingerprints)}."""
    names, labels, digests, thumbs = [], [], [], []
    balance = {}
    for s, (y, sources, prints) in splits.items():
        counts = [int(np.sum(y == 0)), int(np.sum(y == 1))]
        balance[s] = {classes[0]: counts[0], classes[1]: counts[1], "positive_fraction": counts[1] / max(1, sum(counts))}
        for i, (digest, thumb) in enumerate(prints):
            names.append(f"{s}:{sources[i] if sources else i}")
            labels.append(classes[int(y[0, i])])
            digests.append(digest)
            thumbs.append(thumb)
    groups = defaultdict(list)
    for k, d in enumerate(digests):
        groups[d].append(k)
    exact = [_describe(group, names, labels) for group in groups.values() if len(group) > 1]
    firsts = [group[0] for group in groups.values()]  # one image per exact group: near pairs are new pairs
    split_of = _codes([names[k].split(":", 1)[0] for k in firsts])  # (f,) of the firsts
    label_of = _codes([labels[k] for k in firsts])
    # counted block by block; only the LISTED first pairs are kept: thousands of look-alike images make millions
    near = {"pairs": 0, "leaks": 0, "label_conflicts": 0}
    kept = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)  # the first pairs so far: i, j, distance
    for i, j, d in _near_blocks(np.stack([thumbs[k] for k in firsts]), near_distance) if firsts else ():
        near["pairs"] += len(i)
        near["leaks"] += int(np.count_nonzero(split_of[i] != split_of[j]))
        near["label_conflicts"] += int(np.count_nonzero(label_of[i] != label_of[j]))
        if len(i) > LISTED:  # only this block's first LISTED by (i, j) can be among the first LISTED of all
            few = np.argpartition(i * len(firsts) + j, LISTED - 1)[:LISTED]
            i, j, d = i[few], j[few], d[few]
        i, j, d = (np.concatenate(pair) for pair in zip(kept, (i, j, d)))
        first = np.lexsort((j, i))[:LISTED]  # by i, then j
        kept = i[first], j[first], d[first]
    near["listed"] = [{**_describe([firsts[i], firsts[j]], names, labels), "distance": round(d, 6)}
                      for i, j, d in zip(*(a.tolist() for a in kept))]
    return {"near_distance": near_distance, "balance": balance,
            "exact_duplicates": {"groups": len(exact), "leaks": sum(g["leak"] for g in exact),
                                 "label_conflicts": sum(g["label_conflict"] for g in exact), "listed": exact[:LISTED]},
            "near_duplicates": near}


def duplicate_groups(prints, near_distance):
    """The group of each of m images, from their fingerprints (None: a group of its own): images with the same
    pixels or near one another (as the audit defines them, transitively) share a group; (m,) int array.

    Pairs a hair over near_distance are grouped too (a margin for rounding): the audit of the prepared files,
    computed again, must not find a near pair split apart. The pairs are merged block by block as the search
    yields them (connected components of the groups so far), so look-alike folders with millions of pairs are
    never held whole.
    """
    first_of = {}  # pixels' sha256 -> the first image with them
    groups = np.array([k if p is None else first_of.setdefault(p[0], k) for k, p in enumerate(prints)], np.int64)
    firsts = np.array(sorted(set(first_of.values())), np.int64)  # one image per exact group, as the audit
    if len(firsts) < 2:
        return groups
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    labels = np.arange(len(firsts))  # the group of each first so far
    for i, j, _ in _near_blocks(np.stack([prints[k][1] for k in firsts]), near_distance * (1 + 1e-3) + 1e-6):
        if len(i):
            edges = coo_matrix((np.ones(len(i)), (labels[i], labels[j])), shape=(len(firsts),) * 2)
            labels = connected_components(edges, directed=False)[1][labels]
    position = np.full(len(prints), -1, np.int64)  # where each first is in firsts
    position[firsts] = np.arange(len(firsts))
    printed = position[groups] >= 0  # the images without a fingerprint stay alone
    groups[printed] = firsts[_first_of_each(labels)][position[groups[printed]]]  # the first image of its group
    return groups


def _first_of_each(labels):
    """labels (f,) -> (f,): for each entry, the index of the first entry with its label."""
    first = {}
    return np.array([first.setdefault(v, k) for k, v in enumerate(labels.tolist())], np.int64)


def _codes(values):
    """values as an int array, equal values equal codes."""
    codes = {}
    return np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)


def _describe(group, names, labels):
    splits = {names[k].split(":", 1)[0] for k in group}
    return {"examples": [names[k] for k in group], "labels": [labels[k] for k in group],
            "leak": len(splits) > 1, "label_conflict": len({labels[k] for k in group}) > 1}


def thumbnail(pixels):
    """(h, w, 3) uint8 -> (THUMB*THUMB*3,) float32 in 0..1, box-averaged."""
    small = Image.fromarray(pixels, "RGB").resize((THUMB, THUMB), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0


def near_pairs(T, threshold):
    """Pairs (i, j, distance) with i < j whose rows of T (m, n) are closer than threshold in RMS difference,
    sorted."""
    return sorted((int(i), int(j), float(d)) for block in _near_blocks(T, threshold) for i, j, d in zip(*block))


def _near_blocks(T, threshold):
    """The pairs of near_pairs, as arrays (i, j, distance) of a block of rows at a time, in no particular order.

    Two rows that close have means closer than threshold too (|mean(a - c)| <= rms(a - c)), so the rows are
    taken in the order of their means and each block of BLOCK rows is compared only with the rows after it whose
    means are within reach: the same pairs as comparing all m * m, in a fraction of the time for photos (whose
    means spread out), and in memory of at most BLOCK * BLOCK_COLUMNS distances whatever m.
    """
    m, n = T.shape
    means = T.mean(axis=1, dtype=np.float64)
    order = np.argsort(means, kind="stable")
    T, means = T[order], means[order]
    sq = np.einsum("ij,ij->i", T, T)  # (m,) squared norms
    reach = threshold * (1 + 1e-3) + 1e-6  # a margin for rounding in the means and in the distances below
    for start in range(0, m, BLOCK):
        stop = min(start + BLOCK, m)
        end = int(np.searchsorted(means, means[stop - 1] + reach, side="right"))  # no row past end is near
        for first in range(start, end, BLOCK_COLUMNS):
            last = min(first + BLOCK_COLUMNS, end)
            # |a - c|^2 = |a|^2 + |c|^2 - 2 a.c, for this block of rows against the columns first..last
            d2 = (sq[start:stop, None] + sq[None, first:last] - 2.0 * T[start:stop] @ T[first:last].T) / n
            d = np.sqrt(np.maximum(d2, 0.0))
            r, c = np.nonzero(d < threshold)
            after = start + r < first + c  # each pair once
            a, b = order[start + r[after]], order[first + c[after]]
            yield np.minimum(a, b), np.maximum(a, b), d[r[after], c[after]]


def summary(result, shown=10):
    """The audit as lines of text for a person."""
    lines = []
    for s, b in result["balance"].items():
        (c0, n0), (c1, n1) = list(b.items())[:2]
        lines.append(f"{s}: {n0 + n1} images, {c1} {n1}, {c0} {n0} ({b['positive_fraction']:.1%} {c1})")
    for kind, title, unit in (("exact_duplicates", "exact duplicates", "groups"),
                              ("near_duplicates", f"near duplicates (distance < {result['near_distance']})", "pairs")):
        r = result[kind]
        lines.append(f"{title}: {r[unit]} {unit}, {r['leaks']} across splits (leaks), "
                     f"{r['label_conflicts']} with conflicting labels")
        # label conflicts first, then leaks: what a person must act on is never hidden in "... more"
        for g in sorted(r["listed"], key=lambda g: (not g["label_conflict"], not g["leak"]))[:shown]:
            flags = " [leak]" * g["leak"] + " [label conflict]" * g["label_conflict"]
            dist = f" distance {g['distance']}" if "distance" in g else ""
            lines.append("  " + " = ".join(f"{e} ({lab})" for e, lab in zip(g["examples"], g["labels"])) + dist + flags)
        if r[unit] > shown:
            lines.append(f"  ... {r[unit] - shown} more")
    return lines
