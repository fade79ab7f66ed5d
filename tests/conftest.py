import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# scikit-learn's estimator checks include the array API one, which skips unless this is set before scipy is
# imported: with it, Neuron is checked to give the same results with array API dispatch on
os.environ.setdefault("SCIPY_ARRAY_API", "1")
COURSE_FILES = ("train_catvnoncat.h5", "test_catvnoncat.h5")
# a command that works offline too: the folder is any copy of the two course files
RUN_REAL = f"run them with `make test DATA_FROM=<folder holding {' and '.join(COURSE_FILES)}>`"


TIMEOUT_S = 120  # a CLI call of the suite takes seconds; one that runs on past this is a hang, and is killed
_GROUPS = []  # process groups started by the helpers below: none may outlive the session


def run_cli(*args, cwd=ROOT, check=None, timeout=TIMEOUT_S):
    """Run `python -m pipeline ARGS` in a real subprocess; return the CompletedProcess (text output)."""
    return run_python("-m", "pipeline", *args, cwd=cwd, check=check, timeout=timeout)


def train_cli(data_dir, run_dir, *sets):
    """`python -m pipeline train` on the course-schema files in data_dir into run_dir, each of sets one
    `--set section.key=value`; it must succeed."""
    args = ["train", "--set", f"data.dir={data_dir}", "--run-dir", run_dir]
    for s in sets:
        args += ["--set", s]
    return run_cli(*args, check=0)


def run_python(*args, cwd=ROOT, check=None, env=None, timeout=TIMEOUT_S, wrapper=()):
    """Run `python ARGS` (this interpreter, the project importable) in a real subprocess, text output; on a
    timeout or any failure its whole process group is killed. wrapper: a command that runs it (setpriv ...)."""
    with start_python(*args, cwd=cwd, env=env, wrapper=wrapper, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE) as proc:
        out, err = proc.communicate(timeout=timeout)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check is not None:
        assert result.returncode == check, result.stderr
    return result


@contextlib.contextmanager
def start_python(*args, **options):
    """spawn_python(ARGS, **options) in a block: leaving it kills the whole process group, so a test that fails
    or times out leaves nothing running."""
    proc = spawn_python(*args, **options)
    try:
        yield proc
    finally:
        kill_group(proc)  # first: Popen's own __exit__ would wait for a hung process for ever
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


def spawn_python(*args, cwd=ROOT, env=None, wrapper=(), **popen):
    """`python ARGS` started in a new session (its own process group), SIGINT and SIGTERM at their defaults
    whatever this process inherited (a background shell ignores SIGINT, and Python then never raises
    KeyboardInterrupt), text mode; the session-end check fails the run if its group outlives the tests."""
    return spawn([*wrapper, sys.executable, *map(str, args)], cwd=cwd,
                 env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})), text=True, **popen)


def spawn(command, **popen):
    """subprocess.Popen(command) in its own process group with SIGINT and SIGTERM at their defaults; kill it
    with kill_group."""
    proc = subprocess.Popen(command, start_new_session=True, preexec_fn=_default_signals, **popen)
    _GROUPS.append(proc.pid)
    return proc


def run_command(command, timeout, **popen):
    """subprocess.run(command, capture_output=True, timeout=timeout) whose whole process group is killed on a
    timeout or failure (Chromium starts a dozen processes; subprocess.run would kill only the first)."""
    proc = spawn(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def unprivileged():
    """A wrapper for run_python under which file permissions hold even for root (tests run as root in CI
    containers): root without the capabilities that bypass them. () when not root: they hold already."""
    if os.geteuid():
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux): cannot make a folder unreadable")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def _default_signals():
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def kill_group(proc):
    """SIGKILL every process left in proc's group (proc, its workers, a server it started) and reap proc."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def signal_group(proc, signum):
    """Send signum to proc's whole group, as a terminal's Ctrl-C or `kill -TERM -<pgid>` does."""
    os.killpg(proc.pid, signum)


def _survivors():
    """Processes still running that this session started: in the helpers' groups, or children of this one."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"multiprocessing.resource_tracker" in command:
                continue  # multiprocessing's helper (Dask's local clusters start it): it ends with this process
            if state != "Z" and (int(ppid) == os.getpid() or int(pgrp) in _GROUPS):
                alive.append((int(stat.parent.name), command[:80].decode(errors="replace")))
    return alive


@pytest.fixture(autouse=True)
def _kill_what_the_test_started():
    """After each test, SIGKILL the process groups it started that still run (a failed assertion between
    starting a process and stopping it); module fixtures' servers, started before, are theirs to stop."""
    first = len(_GROUPS)
    yield
    for pgid in _GROUPS[first:]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture(scope="session")
def course_dir():
    """The folder holding the real course files: $CATVNONCAT_DIR, else data/raw (where `make test` fetches).

    Without them the real-data tests skip, except when REQUIRE_REAL_DATA is set (CI), where they fail.
    """
    folder = Path(os.environ.get("CATVNONCAT_DIR", ROOT / "data" / "raw"))
    if all((folder / name).is_file() for name in COURSE_FILES):
        return folder
    message = f"the course data is not in {folder}; {RUN_REAL}"
    if os.environ.get("REQUIRE_REAL_DATA"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    """After pytest's own last line: fail the run if a test left a process running, and say how many
    real-data tests were skipped, so a green run without the data is not mistaken for a full one."""
    result = yield
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    survivors = _survivors()
    if survivors:  # a test left a process running: kill it and the groups, and fail the run saying so
        for pid, _ in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pgid in _GROUPS:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line("processes left running by the tests (now killed): "
                                + ", ".join(f"{pid} ({command})" for pid, command in survivors),
                                red=True, bold=True)
    skipped = [r for r in reporter.stats.get("skipped", []) if "the course data is not in" in str(r.longrepr)] \
        if reporter else []
    if skipped:
        reporter.write_line(f"{len(skipped)} tests on the real course data were skipped (not run); {RUN_REAL}",
                            yellow=True, bold=True)
    return result
