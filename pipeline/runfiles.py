"""Files read back from a run or sweep folder are untrusted input, like datasets and models.

A run folder may come from someone else (a shared drive, an archive, a colleague's sweep), so every file that
compare, report, evaluate, predict and sweep --resume read from one goes through here:
- it must be a regular file: a FIFO would block the reader forever, a device (/dev/zero) never end;
- a symbolic link must stay inside its folder (the model: tarfile's `data` filter), so that a run folder cannot
  make the reader open ~/.ssh or /proc;
- it is read only up to a size limit (a 400 MB metrics.json is refused, not parsed into 4 GB of objects);
- JSON is nested at most JSON_MAX_DEPTH levels, CSV fields are bounded (Python's csv limit), and a NUL byte is
  refused: each refusal is one PipelineError naming the file.
"""
import csv
import io
import json
import os
import stat
from pathlib import Path

from pipeline import PipelineError

MAX_BYTES = 64 * 2**20  # a costs.csv of a million iterations is about 30 MB; a summary of many runs far less
JSON_MAX_BYTES = 16 * 2**20  # metrics.json and run.json are a few KB
JSON_MAX_DEPTH = 32  # metrics.json and run.json nest three levels
CSV_FIELD_MAX = csv.field_size_limit()  # characters in one CSV field: Python's limit, 131,072


class Missing(PipelineError):
    """The file does not exist (the caller may say what would have written it)."""


def check(path, root=None):
    """path, checked as a file of its run folder root (default: its own folder): it exists, is a regular file
    (a link to one is followed only if it stays inside root). Returns the real path to open."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Missing(f"{path}: no such file") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read: {e.strerror or e}") from None
    real = Path(os.path.realpath(path))
    if stat.S_ISLNK(info.st_mode) and not real.is_relative_to(os.path.realpath(root)):
        raise PipelineError(f"{path}: refused: a link leading out of {root}")
    return real


def read_bytes(path, root=None, limit=MAX_BYTES):
    """The bytes of the file at path, a regular file of at most limit bytes inside root (see check)."""
    real = check(path, root)
    try:  # O_NONBLOCK: a FIFO swapped in after check must not block the open; fstat then refuses it
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise Missing(f"{path}: no such file") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PipelineError(f"{path}: refused: not a regular file (a pipe, device or folder)")
        if info.st_size > limit:  # before a byte is read: a sparse 400 MB file costs nothing
            raise PipelineError(f"{path}: refused: {info.st_size} bytes, over the limit of {limit} bytes")
        data = f.read(limit + 1)  # +1: a file that grew since fstat is caught too
    if len(data) > limit:
        raise PipelineError(f"{path}: refused: over the limit of {limit} bytes")
    return data


def read_text(path, root=None, limit=MAX_BYTES):
    """The UTF-8 text of the file at path (see read_bytes), refusing NUL bytes (no text file of ours holds one)."""
    data = read_bytes(path, root, limit)
    if b"\0" in data:
        raise PipelineError(f"{path}: refused: it holds a NUL byte, which no text file of a run holds")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: refused: not UTF-8 text") from None


def read_json(path, root=None):
    """The JSON value in the file at path, nested at most JSON_MAX_DEPTH levels (NaN and Infinity, which
    Python writes, are read as floats)."""
    text = read_text(path, root, JSON_MAX_BYTES)
    try:
        value = json.loads(text)
        deep = _too_deep(value, JSON_MAX_DEPTH)
    except RecursionError:  # the parser recurses per level: [[[[...]]]] deeper than Python's stack
        deep = True
    except ValueError as e:
        raise PipelineError(f"{path}: not valid JSON: {e}") from None
    if deep:
        raise PipelineError(f"{path}: refused: JSON nested deeper than {JSON_MAX_DEPTH} levels")
    return value


def _too_deep(value, levels):
    if not isinstance(value, (list, dict)):
        return False
    if levels == 0:
        return True
    return any(_too_deep(v, levels - 1) for v in (value.values() if isinstance(value, dict) else value))


def read_csv(path, root=None):
    """The rows of the CSV file at path (lists of strings), each field at most CSV_FIELD_MAX characters."""
    text = read_text(path, root)
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:  # a field over the limit, an unclosed quote at the end
        raise PipelineError(f"{path}: not valid CSV: {e}") from None
