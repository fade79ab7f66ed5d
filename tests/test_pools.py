"""Worker pools that always end: SIGINT and SIGTERM to the whole process group at random moments of `prepare`
and `sweep --jobs 2` (as a terminal's Ctrl-C or `kill -- -pgid` sends them) end the run within a bounded wait,
with its one line and exit code, no worker output, no process and no temporary folder left; a temporary folder
left by a killed (SIGKILL) run is removed by the next one, and only when its owner is dead."""
import fcntl
import os
import random
import signal
import subprocess
import time

import pytest

from pipeline.files import remove_stale
from tests.conftest import ROOT, run_python, signal_group, start_python
from tests.test_faults import photos  # noqa: F401 (a fixture: 400 images whose prepare takes a moment)

SIGNALS = {signal.SIGINT: (130, "interrupted\n"), signal.SIGTERM: (143, "terminated\n")}


def group_alive(pgid):
    """Whether a process (not a zombie) of process group pgid is still running."""
    for stat in os.scandir("/proc"):
        try:
            with open(f"/proc/{stat.name}/stat") as f:
                state, _, pgrp = f.read().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def interrupted(proc, signum, after, started=lambda: True):
    """Once started() holds, send signum to proc's group after `after` seconds; return (exit code, stderr). The
    run must end within 30 s (a hang fails here, and the group is killed on leaving start_python) and leave no
    process behind."""
    deadline = time.monotonic() + 60
    while not started() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(after)
    signal_group(proc, signum)
    _, err = proc.communicate(timeout=30)
    assert not group_alive(proc.pid), "a worker outlived its parent"
    return proc.returncode, err


def test_signals_at_random_moments_of_prepare_end_it_cleanly(tmp_path, photos):
    rng = random.Random(21)
    processed = tmp_path / "data" / "processed"
    ended = []
    for attempt in range(40):  # until 14 signals have landed during prepare (a late one finds it finished)
        signum = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
        with start_python("-m", "pipeline", "prepare", "--config", photos, "--workers", "2", "--force",
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            code, err = interrupted(proc, signum, rng.uniform(0, 0.3), lambda: any(processed.glob(".photos.*")))
        if "prepared 400 images" in err:  # it finished before the signal (which may have met its exit)
            assert sorted(p.name for p in (processed / "photos").iterdir()) == ["prepare_report.json", "test.h5",
                                                                                "train.h5"]
        else:
            assert (code, err) == SIGNALS[signum]  # one line: no `Process ForkPoolWorker` line, no traceback
            ended.append(code)
        assert [p.name for p in processed.iterdir() if p.name.startswith(".")] == []
        if len(ended) == 14:
            break
    assert len(ended) == 14 and set(ended) == {130, 143}, ended


def test_signals_during_a_parallel_sweep_end_it_cleanly(tmp_path):
    from tests.test_sweep import DEFAULT
    from tests.test_data import write_split
    import numpy as np
    rng = np.random.default_rng(0)
    for split, m in (("train", 40), ("test", 12)):
        write_split(tmp_path / f"{split}_catvnoncat.h5", split, rng.integers(0, 256, (m, 8, 8, 3), dtype=np.uint8),
                    np.arange(m) % 2)
    config = tmp_path / "s.yaml"
    config.write_text(f"base: {DEFAULT}\ndata:\n  dir: {tmp_path}\ntrain:\n  print_every: 100000\n"
                      "sweep:\n  train.num_iterations: [100000, 200000, 300000, 400000]\n")
    for i, signum in enumerate((signal.SIGINT, signal.SIGTERM, signal.SIGINT)):
        sweep_dir = tmp_path / f"sw{i}"
        with start_python("-m", "pipeline", "sweep", "--config", config, "--sweep-dir", sweep_dir, "--jobs", "2",
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            code, err = interrupted(proc, signum, 0.3 * i, lambda: any(sweep_dir.glob("*.incomplete")))
        assert code == SIGNALS[signum][0] and "Traceback" not in err and "Process" not in err, err
        assert err.endswith(SIGNALS[signum][1])


@pytest.mark.parametrize("before", ["nothing", "a dataset"])
def test_a_killed_prepare_leaves_a_folder_the_next_one_removes(tmp_path, photos, before):
    processed = tmp_path / "data" / "processed"
    if before == "a dataset":  # then the next prepare finds it up to date, and still removes the leftover
        assert run_python("-m", "pipeline", "prepare", "--config", photos, cwd=tmp_path).returncode == 0
    with start_python("-m", "pipeline", "prepare", "--config", photos, "--workers", "2", "--force", cwd=tmp_path,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 60
        while not (processed.is_dir() and any(processed.glob(".photos.*/train.h5"))):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.005)
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=30)
    assert sorted(p.name[:8] for p in processed.iterdir()) == [".photos.", *["photos"] * (before != "nothing")]
    result = run_python("-m", "pipeline", "prepare", "--config", photos, cwd=tmp_path)
    assert result.returncode == 0 and ("up to date" in result.stderr) == (before != "nothing"), result.stderr
    assert [p.name for p in processed.iterdir()] == ["photos"]


def test_only_temporary_folders_whose_owner_is_dead_are_removed(tmp_path):
    path = tmp_path / "photos"
    stale, live, user = tmp_path / ".photos.abcd1234", tmp_path / ".photos.live0000", tmp_path / ".photos.mine"
    old = tmp_path / ".photos.old.x1y2z3w4"
    for folder in (stale, live, user, old / "photos"):
        folder.mkdir(parents=True)
    (old / "photos" / "train.h5").write_bytes(b"kept")
    with start_python("-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
                      "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", live,
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        assert holder.stdout.readline() == "held\n"
        remove_stale(path)
        # the live one is still locked by its owner; the user's own folder is not of replace_dir's making;
        # the dead run's old dataset goes back in place, as it would have had that run ended normally
        assert sorted(p.name for p in tmp_path.iterdir()) == [".photos.live0000", ".photos.mine", "photos"]
        assert (path / "train.h5").read_bytes() == b"kept"
        fd = os.open(live, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)


# --- the suite itself: signal tests whatever the caller's signals, no process left behind ---

IGNORING_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "  # a background shell
                   "os.execv(sys.executable, [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', "
                   "*sys.argv[1:]])")


def test_ctrl_c_tests_pass_when_the_suite_inherits_sigint_ignored():
    result = run_python("-c", IGNORING_SIGINT,
                        "tests/test_cli.py::test_an_interrupted_run_leaves_no_half_written_folder",
                        "tests/test_sweep.py::test_interrupted_parallel_sweep_marks_the_running_point_incomplete",
                        timeout=100)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-3000:]


def test_a_test_that_leaves_a_process_running_fails_the_session(tmp_path):
    (tmp_path / "conftest.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                                          "from tests.conftest import *  # noqa\n"
                                          "from tests.conftest import _kill_what_the_test_started  # noqa\n")
    (tmp_path / "test_leak.py").write_text(
        "import subprocess, sys, time\n"
        "def test_leaves_a_sleeper():\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n")
    result = run_python("-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path / "test_leak.py", cwd=tmp_path,
                        timeout=60)
    assert "1 passed" in result.stdout and result.returncode == 1, result.stdout
    assert "processes left running by the tests (now killed): " in result.stdout and "time.sleep(60)" in result.stdout
