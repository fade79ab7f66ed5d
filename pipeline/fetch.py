"""Fetch the course's HDF5 files into data/raw/, checking each one's sha256 before it is moved into place."""
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from pipeline import PipelineError
from pipeline.files import atomic_path, sha256_file

# a public copy of the course files, pinned to one commit; any mirror works since the hashes are checked
DEFAULT_SOURCE = ("https://raw.githubusercontent.com/ramakris/coursera-deeplearning/"
                  "b1c8f954b5711f918c75f764138837bbe1b3f7fc/datasets/")

SHA256 = {
    "train_catvnoncat.h5": "fbe56ab67c3ae28d564e3a644189117976d6b31af0a3ce9bb17dbf22908af242",
    "test_catvnoncat.h5": "6a9d39ce52fa85953c5834695b8534a30ed8cfd54971fb2f080b5a24d002b951",
}

TIMEOUT = 60  # seconds without an answer before a download is given up


def fetch(source, dest, files=SHA256, log=print):
    """Put every file of `files` (name -> sha256) into dest from source: an http(s):// or file:// URL or a
    local folder.

    A file already in dest with the right hash is kept as it is. Returns the paths of the files in dest.
    """
    dest = Path(dest)
    if "://" not in str(source) and not Path(source).is_dir():  # said even when nothing needs fetching
        raise PipelineError(f"{source}: not a folder, nor an http(s):// or file:// URL")
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
            origin = _copy(str(source), name, tmp)
            actual = sha256_file(tmp)
            if actual != expected:
                raise PipelineError(f"{origin}: sha256 mismatch for {name}: expected {expected}, got {actual}; "
                                    "nothing was written")
        log(f"{target}: fetched from {origin}, sha256 ok")
        paths.append(target)
    return paths


def _copy(source, name, tmp):
    """Copy `name` from source into the file tmp; return where it came from."""
    if "://" in source:
        url = source.rstrip("/") + "/" + name
        if not url.startswith(("http://", "https://", "file://")):
            raise PipelineError(f"{source}: only http://, https:// and file:// URLs are supported")
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        except urllib.error.HTTPError as e:
            raise PipelineError(f"{url}: HTTP error {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise PipelineError(f"{url}: cannot download: {e.reason}") from None
        except (OSError, ValueError) as e:
            raise PipelineError(f"{url}: download failed: {e}") from None
        return url
    folder = Path(source)
    if not folder.is_dir():
        raise PipelineError(f"{source}: not a folder, nor an http(s):// or file:// URL")
    path = folder / name
    if not path.is_file():
        raise PipelineError(f"{path}: no such file")
    shutil.copyfile(path, tmp)
    return path
