"""Fetch the course's HDF5 files into data/raw/, checking each one's size and sha256 before it is moved into place.

Without --from, the public copies in DEFAULT_SOURCE are tried in turn, so that one of them disappearing does not
stop the first command; when none can be reached, the error says how to go on from a folder or URL instead.
"""
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from pipeline import PipelineError
from pipeline.files import atomic_path, sha256_file

# public copies of the course files, each pinned to one commit, tried in this order; the hashes are checked,
# so any copy will do (these could not be tried from the machine they were chosen on: it has no internet)
DEFAULT_SOURCE = tuple(f"https://raw.githubusercontent.com/{repo}/{commit}/datasets/" for repo, commit in (
    ("ramakris/coursera-deeplearning", "b1c8f954b5711f918c75f764138837bbe1b3f7fc"),
    ("Youngyi/DeepLearning", "dff21304241c5e651d4a6680cba6e23c3990e915"),
    ("FechetahMakhlouf/cat_detector", "dd45e2093be22db4021cf45f428d0bafb52eb42c"),
    ("giuseppefutia/word2vec", "d11195fa8f20367a8ec767c603450592d6f53f20"),
))

SHA256 = {
    "train_catvnoncat.h5": "fbe56ab67c3ae28d564e3a644189117976d6b31af0a3ce9bb17dbf22908af242",
    "test_catvnoncat.h5": "6a9d39ce52fa85953c5834695b8534a30ed8cfd54971fb2f080b5a24d002b951",
}
SIZES = {"train_catvnoncat.h5": 2572022, "test_catvnoncat.h5": 616958}  # bytes: a source sending more is cut off
MAX_BYTES = 64 << 20  # the cap for a file of unknown size

TIMEOUT = 30  # seconds without an answer before a download is given up
BLOCK = 1 << 20


def fetch(source, dest, files=SHA256, log=print, sizes=SIZES):
    """Put every file of `files` (name -> sha256) into dest from source: an http(s):// or file:// URL or a
    local folder, or a sequence of them (mirrors) tried in turn for each file.

    A file already in dest with the right hash is kept as it is. A source sending more than the file's size
    (sizes, else MAX_BYTES) is cut off there. Nothing but a verified file is ever left in dest, whatever
    stops the download (an error, Ctrl-C, SIGTERM). Returns the paths of the files in dest.
    """
    dest = Path(dest)
    sources = [str(source)] if isinstance(source, (str, os.PathLike)) else [str(s) for s in source]
    if len(sources) == 1 and "://" not in sources[0] and not Path(sources[0]).is_dir():
        raise PipelineError(_not_a_folder(sources[0]))  # said even when nothing is needed
    paths = []
    for name, expected in files.items():
        target = dest / name
        if target.is_file():
            actual = sha256_file(target)
            if actual == expected:
                log(f"{target}: present, sha256 ok")
                paths.append(target)
                continue
            log(f"{target}: sha256 is {actual}, expected {expected}; fetching it again")
        with atomic_path(target) as tmp:
            origin = _first_good(sources, name, expected, sizes.get(name, MAX_BYTES), tmp, log, files)
        log(f"{target}: fetched from {origin}, sha256 ok")
        paths.append(target)
    return paths


def _first_good(sources, name, expected, limit, tmp, log, files):
    """Copy `name` into tmp from the first source that has it with the right sha256; return where it came
    from. The source that served moves to the front of `sources`, for the next file."""
    for k, source in enumerate(sources):
        try:
            origin = _copy(source, name, tmp, limit)
            actual = sha256_file(tmp)
            if actual != expected:
                raise PipelineError(f"{origin}: sha256 mismatch for {name}: expected {expected}, got {actual}; "
                                    "nothing was written")
        except PipelineError as e:
            if len(sources) == 1:
                raise
            if k + 1 < len(sources):
                log(f"{e}; trying the next mirror")
                continue
            raise PipelineError(
                f"{name}: none of the {len(sources)} known mirrors could provide it (the last said: {e}); "
                f"to go on, put {' and '.join(files)} in a folder or at a URL of yours and run "
                "`make train DATA_FROM=<folder or URL>` or `python -m pipeline fetch --from <folder or URL>`"
            ) from None
        sources.insert(0, sources.pop(k))
        return origin


def _not_a_folder(source):
    """Why a local source cannot be read, with the folder meant when it is a file (a course file, say)."""
    if Path(source).is_file():
        return f"{source}: a file; --from takes the folder holding the files: did you mean {Path(source).parent}?"
    return f"{source}: not a folder, nor an http(s):// or file:// URL"


def _copy(source, name, tmp, limit):
    """Copy `name` from source into the file tmp, refusing more than limit bytes; return where it came from.

    A failure of the source is a PipelineError naming it; a failure to write tmp (a full disk) an OSError."""
    if "://" not in source:
        path = Path(source) / name
        if not Path(source).is_dir():
            raise PipelineError(_not_a_folder(source))
        if not path.is_file():  # also refuses FIFOs and devices, which could be read forever
            raise PipelineError(f"{path}: no such file")
        with open(path, "rb") as f, open(tmp, "wb") as out:
            for block in _blocks(f, path, limit):
                out.write(block)
        return path
    url = source.rstrip("/") + "/" + name
    if not url.startswith(("http://", "https://", "file://")):
        raise PipelineError(f"{source}: only http://, https:// and file:// URLs are supported")
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        raise PipelineError(f"{url}: HTTP error {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise PipelineError(f"{url}: cannot download: {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise PipelineError(f"{url}: download failed: {e}") from None
    with response, open(tmp, "wb") as out:
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > limit:
            raise PipelineError(f"{url}: announces {announced} bytes, more than the {limit} of {name}; "
                                "not downloaded")
        for block in _blocks(response, url, limit):
            out.write(block)
    return url


def _blocks(f, where, limit):
    """The bytes read from f, a block at a time, refusing more than limit in all; a failure to read is a
    PipelineError naming `where`."""
    total, read = 0, getattr(f, "read1", f.read)  # read1: what has arrived, without waiting for a whole block
    while True:
        try:
            block = read(BLOCK)
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise PipelineError(f"{where}: download failed: {e}") from None
        if not block:
            return
        total += len(block)
        if total > limit:
            raise PipelineError(f"{where}: more than the {limit} bytes expected; stopped, nothing was written")
        yield block
