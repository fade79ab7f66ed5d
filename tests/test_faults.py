"""Faults through the real CLI: SIGTERM to real subprocesses, a really full disk (a small tmpfs), two runs
aimed at one folder. Each ends in one line and an exit code, and leaves nothing half-written or hidden."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, run_cli, spawn_python
from tests.imagefolders import make_folder
from tests.test_data import write_split

ENOSPC = "No space left on device"


def start_cli(*args, cwd):
    """`python -m pipeline ARGS` started in a real subprocess, its stderr piped."""
    return spawn_python("-m", "pipeline", *args, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)


def wait_for(condition, proc, timeout=60):
    """Poll until condition() holds; fail if proc ends first (the fault came too late to be tested)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended before the fault: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def terminated(proc):
    """Send SIGTERM; return the stderr of the process, which must exit 143 saying so, without a traceback."""
    proc.send_signal(signal.SIGTERM)
    with proc.stderr:
        code, err = proc.wait(timeout=60), proc.stderr.read()
    assert code == 143 and err.endswith("terminated\n") and "Traceback" not in err, err
    return err


@contextlib.contextmanager
def tmpfs(path, size):
    """A real, small file system mounted at path: writing more than size bytes fails with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({mount.stderr.strip() or mount.returncode}); "
                    "the full-disk tests need mount rights (root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder, leave):
    """Fill the file system of folder until `leave` bytes are free."""
    st = os.statvfs(folder)
    with open(folder / "filler", "wb") as f:
        f.write(bytes(max(0, st.f_bavail * st.f_frsize - leave)))


def hidden(folder):
    return sorted(p.name for p in folder.rglob(".*"))


def course_like(folder, m=(40, 160), size=64, seed=0):
    """Course-schema files of random pictures and labels in folder (many test images are misclassified)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    for split, n in zip(("train", "test"), m):
        write_split(folder / f"{split}_catvnoncat.h5", split,
                    rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 2)
    return folder


def train_args(data, run_dir, *sets):
    """The arguments of `train` on the course-schema files in data into run_dir, each of sets a --set."""
    return ["train", "--config", ROOT / "configs" / "default.yaml", "--set", f"data.dir={data}",
            "--run-dir", run_dir, *[a for s in sets for a in ("--set", s)]]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """An image folder whose prepared dataset (64 px noise) needs more than 4 MiB."""
    root = tmp_path_factory.mktemp("photos")
    make_folder(root / "photos", counts=(("cat", 200), ("non-cat", 200)), size=64)
    config = {"data": {"source": "folder", "root": str(root / "photos"), "image_size": 64}}
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    return root / "c.yaml"


# --- SIGTERM: handled as Ctrl-C, exit 143, nothing left behind ---

def test_sigterm_during_training_removes_the_claimed_run_folder(tmp_path):
    data = course_like(tmp_path, m=(6, 4), size=4)
    proc = start_cli(*train_args(data, tmp_path / "run", "train.num_iterations=100000000"), cwd=tmp_path)
    wait_for((tmp_path / "run").exists, proc)
    time.sleep(0.3)  # training, not loading
    terminated(proc)
    assert not (tmp_path / "run").exists()


def test_sigterm_during_prepare_leaves_no_temporary_dataset_folder(tmp_path, photos):
    processed = tmp_path / "data" / "processed"
    proc = start_cli("prepare", "--config", photos, "--workers", "1", cwd=tmp_path)
    # the staging file of the decoded pixels is there from the first image on (train.h5 only once all are decoded)
    wait_for(lambda: processed.is_dir() and any(processed.glob(".photos.*/decoded-pixels.tmp")), proc)
    terminated(proc)
    assert list(processed.iterdir()) == []


def test_sigterm_during_evaluate_keeps_the_old_gallery_and_leaves_no_temporary(tmp_path):
    data = course_like(tmp_path)
    run = tmp_path / "run"
    run_cli(*train_args(data, run, "train.num_iterations=10", "evaluate.enlarge=1"), cwd=tmp_path, check=0)
    before = sorted(p.name for p in (run / "misclassified").iterdir())
    proc = start_cli("evaluate", "--run", run, "--set", "evaluate.enlarge=8", cwd=tmp_path)  # slow PNGs
    wait_for(lambda: any(run.glob(".misclassified.*/*.png")), proc)
    terminated(proc)
    assert hidden(tmp_path) == [] and sorted(p.name for p in (run / "misclassified").iterdir()) == before


# --- a full disk: one line naming the file, no crash, nothing left ---

# the decoded pixels (4.7 MiB) wait in a staging file until the split is decided: 4 MiB fills up there, 7 MiB
# holds them and fills up in the HDF5 file written from them
@pytest.mark.parametrize("size, full", [("4m", "decoded-pixels.tmp"), ("7m", "train.h5")])
def test_a_full_disk_during_prepare_is_one_line_not_a_segfault(tmp_path, photos, size, full):
    processed = tmp_path / "data" / "processed"
    with tmpfs(processed, size):
        result = run_cli("prepare", "--config", photos, "--workers", "1", cwd=tmp_path)
        assert result.returncode == 1, result.stderr  # it was 139, a segfault inside HDF5, after a page of errors
        assert result.stderr == f"error: data/processed/photos/{full}: cannot write the prepared dataset: {ENOSPC}\n"
        assert list(processed.iterdir()) == [] and os.statvfs(processed).f_bfree == os.statvfs(processed).f_blocks


def test_a_full_disk_during_training_names_the_file_and_removes_the_run(tmp_path):
    data = course_like(tmp_path / "data", m=(20, 10))
    with tmpfs(tmp_path / "disk", "1m") as disk:
        fill(disk, 64 << 10)  # model.npz alone needs 100 kB
        result = run_cli(*train_args(data, disk / "run", "train.num_iterations=10"), cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.startswith(f"error: {disk / 'run'}/")
        assert result.stderr.endswith(f": {ENOSPC}\n") and result.stderr.count("\n") == 1, result.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_full_disk_during_evaluate_names_the_file_and_keeps_the_run(tmp_path):
    data = course_like(tmp_path / "data", m=(20, 40))
    with tmpfs(tmp_path / "disk", "4m") as disk:
        run = disk / "run"
        run_cli(*train_args(data, run, "train.num_iterations=10", "evaluate.enlarge=1"), cwd=tmp_path, check=0)
        kept = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        fill(disk, 256 << 10)
        result = run_cli("evaluate", "--run", run, "--set", "evaluate.enlarge=8", cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.startswith(f"error: {run}/misclassified/test_")
        assert result.stderr.endswith(f".png: {ENOSPC}\n") and result.stderr.count("\n") == 1, result.stderr
        assert hidden(disk) == [] and (run / "model.npz").read_bytes() == kept["model.npz"]
        assert sorted(p.name for p in (run / "misclassified").iterdir()) == \
            sorted(k for k in kept if k.startswith("test_") or k in ("index.csv", "index.html", "grid.png"))


# --- two runs aimed at one folder: exactly one proceeds ---

def test_of_two_trainings_into_one_run_dir_the_second_is_refused_while_the_first_trains(tmp_path):
    data = course_like(tmp_path, m=(6, 4), size=4)
    run = tmp_path / "run"
    first = start_cli(*train_args(data, run, "train.num_iterations=100000000"), cwd=tmp_path)
    wait_for(run.exists, first)  # claimed, and empty until its training ends
    second = run_cli(*train_args(data, run, "train.num_iterations=10"), cwd=tmp_path)
    assert second.returncode == 1 and second.stdout == ""  # both reported success, and one run was lost
    assert second.stderr == (f"error: {run}: in use by another run that is still going; "
                             "wait for it to end or choose another --run-dir\n")
    assert first.poll() is None and list(run.iterdir()) == []  # the second wrote nothing into it
    terminated(first)
    assert not run.exists()


def test_a_finished_run_folder_is_refused_and_an_empty_one_accepted(tmp_path):
    data = course_like(tmp_path, m=(6, 4), size=4)
    (tmp_path / "run").mkdir()
    run_cli(*train_args(data, tmp_path / "run", "train.num_iterations=10"), cwd=tmp_path, check=0)
    again = run_cli(*train_args(data, tmp_path / "run", "train.num_iterations=10"), cwd=tmp_path)
    assert again.returncode == 1 and "run: already exists and is not an empty folder" in again.stderr


def test_a_locked_folder_is_refused_until_its_holder_ends_however_it_ends(tmp_path):
    from pipeline import PipelineError
    from pipeline.artifacts import claim_dir

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pipeline.artifacts import claim_dir; "
                               "claim_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)", tmp_path],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    with holder.stdout:
        assert holder.stdout.readline() == "held\n"
    with pytest.raises(PipelineError, match=f"{tmp_path}: in use by another run that is still going; "
                                            "wait for it to end or choose another --resume"):
        claim_dir(tmp_path, "--resume")
    holder.kill()  # SIGKILL: no cleanup of its own, yet no stale lock
    holder.wait()
    assert claim_dir(tmp_path) == tmp_path
