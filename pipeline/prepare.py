"""The prepare stage: a user's image folders -> data/processed/<name>/{train,test}.h5 in the course schema.

Images are decoded in worker processes with the shared loader (pipeline/images.py) and appended to the
split files in the order of their sorted paths, so the result does not depend on the number of workers.
The whole folder is built under a temporary name and swapped in when complete. It is rebuilt only when
the settings or the source files (names, sizes, mtimes) changed, which the fingerprint in
prepare_report.json records.

The split is decided after decoding, from what the audit compares (pixels and thumbnails): exact and near
duplicates form groups, each kept on one side (pipeline/scan.py). Until then the decoded pixels wait in a file
of the temporary folder, in the order of the paths.
"""
import errno
import functools
import hashlib
import io
import json
import mmap
import multiprocessing
import os
import stat
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline import PipelineError
from pipeline.audit import THUMB, audit_fingerprints, fingerprint
from pipeline.audit import summary as audit_summary
from pipeline.files import remove_stale, replace_dir, sha256_file, write_text
from pipeline.h5write import SplitWriter
from pipeline.images import load_image, readable_formats
from pipeline.names import printable
from pipeline.scan import SPLITS, check_test_root, class_names, grouped_split, scan
from pipeline.workers import Workers

PROCESSED_ROOT = Path("data/processed")
REPORT = "prepare_report.json"
WINDOW_BYTES = 64 << 20  # pixels decoded into shared memory before the main process takes them over
_SHARED = None  # in a forked worker: (pixels (window, h, w, 3) uint8, thumbnails (window, THUMB*THUMB*3) float32)
READ_WHOLE_BYTES = 64 << 20  # files up to this size are read into memory once, for the hash and the decoder
STAGED = "decoded-pixels.tmp"  # in the temporary folder, deleted before it is swapped in
FORMAT = 3  # bump when what prepare writes changes: datasets of an older format are rebuilt


def dataset_dir(data):
    """data/processed/<data.name, or the root folder's name>."""
    name = data.name or Path(data.root).resolve().name
    if not name.isprintable():  # data.name is checked with the config; a folder's own name is checked here
        raise PipelineError(f"data.root {printable(data.root)}: its folder name holds control characters; "
                            "set data.name to name the prepared dataset")
    return PROCESSED_ROOT / name


def prepare(config, workers=None, force=False, strict=False, log=lambda message: None, progress=False):
    """Prepare the folder dataset config.data names, unless it is up to date. Returns (folder, report,
    whether it was built now)."""
    data = config.data
    if not data.root:
        raise PipelineError("data.root: required when data.source is folder (the folder holding cat/ and non-cat/)")
    if data.test_fraction + data.val_fraction >= 1:
        raise PipelineError(f"data.test_fraction + data.val_fraction must be < 1 (some images must be left for "
                            f"training), got {data.test_fraction} + {data.val_fraction}")
    out = dataset_dir(data)
    remove_stale(out)  # what a killed (SIGKILL) prepare left, even when this one finds the dataset up to date
    entries, n_root, ignored = _collect(data)
    settings = _settings(data)
    fingerprint = hashlib.sha256(json.dumps(
        [FORMAT, settings, config.audit.near_distance, n_root, [(e.rel, e.size, e.mtime_ns) for e in entries], ignored]
    ).encode()).hexdigest()
    report = read_report(out)
    if not force and report.get("fingerprint") == fingerprint:
        if strict and report["skipped"]:
            raise PipelineError(f"{out / REPORT}: {len(report['skipped'])} files were skipped "
                                f"(first: {report['skipped'][0]['file']}); --strict refuses any skipped file")
        check_test_root(report["duplicates"], data, strict, log)
        log(f"{out}: up to date (same sources and settings), not prepared again; --force redoes it")
        return out, report, False
    classes = [names[0] for names in class_names(data)]
    report = {"fingerprint": fingerprint, "settings": settings, "classes": classes, "ignored": ignored}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(out, lambda tmp: _build(tmp, entries, n_root, config, report, workers, strict, progress))
    except OSError as e:  # an unwritable or occupied data/processed
        raise PipelineError(f"{e.filename or out}: cannot write the prepared dataset: {e.strerror or e}") from None
    check_test_root(report["duplicates"], data, False, log)  # --strict refused it before the swap
    log(f"{out}: prepared {sum(sum(c.values()) for c in report['counts'].values())} images")
    return out, report, True


def _collect(data):
    """(entries of data.root then of data.test_root when set, how many are data.root's, ignored files)."""
    entries, ignored = scan(data.root, data)
    if not data.test_root:
        return entries, len(entries), ignored
    test_entries, test_ignored = scan(data.test_root, data)
    return entries + test_entries, len(entries), ignored + test_ignored


def _settings(data):
    """Everything prepare's result depends on, besides the files themselves."""
    keys = ("positive", "negative", "test_fraction", "val_fraction", "split_seed", "image_size", "min_size",
            "fit", "resample")
    return {"root": str(Path(data.root).resolve()),
            "test_root": str(Path(data.test_root).resolve()) if data.test_root else "",
            **{k: getattr(data, k) for k in keys}}


def _build(tmp, entries, n_root, config, report, workers, strict, progress):
    data = config.data
    size = (data.image_size, data.image_size)
    skipped, decoded_ok = [], []  # per entry: (sha256 of the file, fingerprint) or None when skipped
    bar = tqdm(total=len(entries), desc="prepare", unit="img", file=sys.stderr, leave=False,
               disable=not progress or not sys.stderr.isatty())
    readable = [str(e.path) for e in entries if not e.problem]  # a loop or an unlistable folder is not decoded
    decoded = _decode_all(readable, (size, data.fit, data.resample, data.min_size), workers)
    outcomes = ((None, e.problem, "", None) if e.problem else next(decoded) for e in entries)
    staged = tmp / STAGED  # the pixels of the images not skipped, in order, until the split is known
    try:
        with open(staged, "wb") as stage:
            for e, (pixels, reason, digest, prints) in zip(entries, outcomes):
                bar.update()
                if pixels is None:
                    if strict:
                        raise PipelineError(f"{e.path}: {reason}; --strict refuses any skipped file")
                    skipped.append({"file": e.rel, "reason": reason})
                else:
                    _stage(stage, pixels, staged)
                decoded_ok.append(None if pixels is None else (digest, prints))
    finally:
        decoded.close()  # stops the worker processes at once when a file was refused
        bar.close()
    splits, report["duplicates"] = grouped_split(entries, n_root, [d and d[1] for d in decoded_ok], data,
                                          config.audit.near_distance)
    if strict:
        check_test_root(report["duplicates"], data, strict, log=None)
    _write_splits(tmp, entries, splits, decoded_ok, staged, size, report, config.audit.near_distance)
    staged.unlink()
    report["skipped"] = skipped
    _check_counts(report, data)
    write_text(tmp / REPORT, json.dumps(report, indent=2) + "\n")


def _stage(stage, pixels, staged):
    """Append pixels to the staging file: a full disk is an ordinary OSError naming it (a memmap would SIGBUS)."""
    try:
        stage.write(pixels.tobytes())
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(staged)) from None


def _write_splits(tmp, entries, splits, decoded_ok, staged, size, report, near_distance):
    """The split files from the staged pixels, each in the order of the paths, and the audit of the result."""
    writers = {s: SplitWriter(tmp / f"{s}.h5", s, report["classes"], size, report["settings"])
               for s in SPLITS if s in splits}
    audited = {s: ([], [], []) for s in writers}  # per split: labels, sources, fingerprints (see pipeline/audit.py)
    n = sum(d is not None for d in decoded_ok)
    pixels = np.memmap(staged, np.uint8, "r", shape=(n, *size, 3)) if n else None  # (n, h, w, 3), read only
    slot = 0
    try:
        for e, s, d in zip(entries, splits, decoded_ok):
            if d is None:
                continue
            writers[s].add(pixels[slot], e.label, e.rel, d[0])
            slot += 1
            for column, value in zip(audited[s], (e.label, e.rel, d[1])):
                column.append(value)
        for w in writers.values():
            w.flush()  # the last batches, so that closing below has nothing left to write
    finally:
        for w in writers.values():
            w.close(discard=True)  # on an error, the queued images go with the temporary folder
        del pixels
    report["counts"] = {s: dict(zip(report["classes"], w.counts)) for s, w in writers.items()}
    report["audit"] = audit_fingerprints({s: (np.array([labels]), sources, prints)  # y: (1, m)
                                          for s, (labels, sources, prints) in audited.items() if labels},
                                         report["classes"], near_distance)


def _check_counts(report, data):
    counts = report["counts"]
    if not sum(sum(c.values()) for c in counts.values()):
        raise PipelineError(f"{data.root}: no usable images ({len(report['skipped'])} skipped)")
    for name, n in counts.get("train", dict.fromkeys(report["classes"], 0)).items():  # none when all went to test
        if not n:
            raise PipelineError(f"{data.root}: no usable training images of class '{name}'; training needs "
                                f"examples of both classes (data.test_fraction is {data.test_fraction}, "
                                f"data.val_fraction {data.val_fraction})")
    if not sum(counts.get("test", {}).values()):
        raise PipelineError(f"{data.test_root or data.root}: the test split has no usable images "
                            f"(data.test_fraction is {data.test_fraction})")


def _decode_all(paths, options, workers):
    """decode(path, options) for every path, in order: in this process for one worker, else in a pool."""
    workers = min(workers or os.cpu_count() or 1, len(paths))
    readable_formats()  # Pillow's plugins imported once here, before the workers are forked
    if workers <= 1:
        yield from (decode(path, options) for path in paths)
        return
    # fork starts a worker in milliseconds with numpy, PIL and h5py already imported (spawn imports them again);
    # macOS and Windows cannot fork safely
    fork = sys.platform.startswith("linux")
    context = multiprocessing.get_context("fork" if fork else "spawn")
    h, w = options[0]
    window = min(len(paths), max(workers * 4, WINDOW_BYTES // (h * w * 3)))  # images decoded per hand-over
    # chunks of files per message: few messages, yet small enough for the last chunks to even out the workers
    chunksize = max(1, min(32, window // (workers * 8)))
    if not fork:
        with Workers(workers, context=context) as pool:
            yield from pool.imap(functools.partial(decode, options=options), paths, chunksize)
        return
    # forked workers write pixels and thumbnails into memory shared with this process and send back only the
    # small rest: pickling the arrays through the pipes cost 0.1-0.15 ms of CPU per image (docs/ingest.md)
    pixels, thumbs = _shared((window, h, w, 3), np.uint8), _shared((window, THUMB * THUMB * 3), np.float32)
    with Workers(workers, _attach, (pixels, thumbs), context) as pool:  # forked: the arrays are inherited
        for start in range(0, len(paths), window):
            batch = list(enumerate(paths[start:start + window]))  # (slot in the shared arrays, path)
            for slot, (ok, reason, digest, pixels_sha) in enumerate(
                    pool.imap(functools.partial(_decode_shared, options=options), batch, chunksize)):
                # copies: the next window overwrites the slots, and the writers keep what they are given
                yield ((pixels[slot].copy(), None, digest, (pixels_sha, thumbs[slot].copy())) if ok
                       else (None, reason, digest, None))


def _shared(shape, dtype):
    """A zeroed array in anonymous shared memory: a process forked afterwards writes to the same pages."""
    return np.frombuffer(mmap.mmap(-1, max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)), dtype).reshape(shape)


def _attach(pixels, thumbs):
    """A forked worker's start: remember the shared arrays (the main process never sets _SHARED)."""
    global _SHARED
    _SHARED = pixels, thumbs


def _decode_shared(item, options):
    """decode() in a forked worker for item (slot, path): the pixels and thumbnail go to slot of _SHARED."""
    slot, path = item
    pixels, reason, digest, prints = decode(path, options)
    if pixels is None:
        return False, reason, digest, None
    _SHARED[0][slot], _SHARED[1][slot] = pixels, prints[1]
    return True, None, digest, prints[0]


def decode(path, options):
    """One file and options (size (h, w), fit, resample, min_size) -> (pixels (h, w, 3) uint8 or None,
    reason it was skipped or None, sha256 of the file, the audit's fingerprint of the pixels or None)."""
    size, fit, resample, min_size = options
    try:
        data = read_small(path)
        digest = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    except OSError as e:
        return None, f"unreadable ({e.strerror})", "", None
    if min_size:
        try:
            with Image.open(path if data is None else io.BytesIO(data), formats=readable_formats()) as im:
                w, h = im.size  # the header only, of an allowed format
            if min(w, h) < min_size:
                return None, f"too small ({w}x{h} px, data.min_size is {min_size})", digest, None
        except Exception:  # not an image: load_image below says why
            pass
    try:
        pixels = load_image(path, size, fit, resample, data=data)
    except PipelineError as e:
        return None, str(e).removeprefix(f"{path}: "), digest, None
    return pixels, None, digest, fingerprint(pixels)


def read_small(path):
    """The content of the file at path if it is at most READ_WHOLE_BYTES, else None (it is hashed and decoded
    as a stream). Read once, the bytes hashed are the bytes decoded; the read is bounded even for a file that
    grew since it was listed, and a file that became a pipe is refused rather than waited on."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > READ_WHOLE_BYTES:
            return None  # not read here only to be read again as a stream
        data = f.read(READ_WHOLE_BYTES + 1)
    return data if len(data) <= READ_WHOLE_BYTES else None


def read_report(folder):
    """The prepare_report.json of a prepared folder, or {} when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(folder) / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def summary(folder, report, shown=10):
    """The prepare report as lines of text for a person."""
    counts = ", ".join(f"{s} {sum(c.values())} ({', '.join(f'{k} {n}' for k, n in c.items())})"
                       for s, c in report["counts"].items())
    lines = [f"{folder}: {counts}"]
    skipped, ignored = report["skipped"], report["ignored"]
    lines.append(f"skipped {len(skipped)} files" + ":" * bool(skipped))
    lines += [f"  {s['file']}: {s['reason']}" for s in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"  ... {len(skipped) - shown} more in {folder / REPORT}")
    lines.append(f"ignored {len(ignored)} files (hidden, or not an image by extension)"
                 + (": " + ", ".join(ignored[:shown]) + ", ..." * (len(ignored) > shown) if ignored else ""))
    lines.append(duplicates_sentence(report["duplicates"]))
    return lines + [f"audit: {line}" for line in audit_summary(report["audit"])]


def duplicates_sentence(duplicates):
    """One sentence on the groups of duplicates and where the split put them (the run report says it too)."""
    if not duplicates["groups"]:
        return "no exact or near duplicates among the images."
    text = (f"{duplicates['groups']} groups of exact or near duplicates ({duplicates['images']} images), "
            "each kept whole in one split")
    if duplicates["test_root_leaks"]:
        text += f", except {duplicates['test_root_leaks']} images of data.test_root that data.root holds too"
    return text + "."
