"""What makes a run repeatable, recorded as run.json in its folder (written last: it marks a finished run).

config_sha256 is the sha256 of the resolved config.yaml text, so two runs with the same hash had the same
settings; git_commit and git_dirty say which code ran (null outside a git checkout); data_sha256 holds the
sha256 of each data file the config reads (the course files, or a folder dataset's prepared HDF5 files).
"""
import datetime
import hashlib
import json
import platform
import subprocess
from pathlib import Path

import h5py
import numpy as np
import PIL
import yaml

from pipeline import __version__
from pipeline.config import config_name, dump_config
from pipeline.files import sha256_file, write_text

CODE_DIR = Path(__file__).resolve().parent


def git_state(folder=CODE_DIR):
    """(commit, dirty) of the git checkout holding folder, or (None, None) without git, a checkout or a commit.

    One git process (a short run spends more time starting processes than in them): `status --branch` in
    porcelain v2 gives the commit as its `# branch.oid` line and every changed or untracked file after it;
    --no-optional-locks: recording provenance never rewrites the checkout's index."""
    try:
        status = subprocess.run(["git", "--no-optional-locks", "-C", str(folder), "status", "--porcelain=v2",
                                 "--branch"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None, None
    lines = status.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if status.returncode != 0 or commit in (None, "(initial)"):  # (initial): a repository without a commit
        return None, None
    return commit, any(not line.startswith("#") for line in lines)


def versions():
    return {"python": platform.python_version(), "catneuron": __version__, "numpy": np.__version__,
            "h5py": h5py.__version__, "Pillow": PIL.__version__, "pyyaml": yaml.__version__}


def data_files(config):
    """The HDF5 files config's data section trains and tests on (those that exist)."""
    if config.data.source == "course":
        from pipeline.data import COURSE_FILES

        files = [Path(config.data.dir) / name for name in COURSE_FILES.values()]
    else:
        from pipeline.prepare import dataset_dir

        files = [dataset_dir(config.data) / f"{split}.h5" for split in ("train", "val", "test")]
    return [f for f in files if f.is_file()]


_HASHES = {}  # (path, size, mtime) -> sha256: a sweep's runs share their data files, hashed once


def file_sha256(path):
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def provenance(config, overrides, config_file, started, duration):
    """The run.json record; started is a time.time() stamp, duration in seconds."""
    commit, dirty = git_state()
    return {
        "config_sha256": hashlib.sha256(dump_config(config).encode("utf-8")).hexdigest(),
        "config_file": None if config_file is None else config_name(config_file),
        "overrides": list(overrides),
        "seed": config.train.seed,
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": versions(),
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "data_sha256": {str(path): file_sha256(path) for path in data_files(config)},
    }


def write_run_json(run_dir, record):
    write_text(Path(run_dir) / "run.json", json.dumps(record, indent=2) + "\n")
