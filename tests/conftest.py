import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE_FILES = ("train_catvnoncat.h5", "test_catvnoncat.h5")
# a command that works offline too: the folder is any copy of the two course files
RUN_REAL = f"run them with `make test DATA_FROM=<folder holding {' and '.join(COURSE_FILES)}>`"


def run_cli(*args, cwd=ROOT, check=None):
    """Run `python -m pipeline ARGS` in a real subprocess; return the CompletedProcess (text output)."""
    return run_python("-m", "pipeline", *args, cwd=cwd, check=check)


def train_cli(data_dir, run_dir, *sets):
    """`python -m pipeline train` on the course-schema files in data_dir into run_dir, each of sets one
    `--set section.key=value`; it must succeed."""
    args = ["train", "--set", f"data.dir={data_dir}", "--run-dir", run_dir]
    for s in sets:
        args += ["--set", s]
    return run_cli(*args, check=0)


def run_python(*args, cwd=ROOT, check=None, env=None):
    """Run `python ARGS` (this interpreter, the project importable) in a real subprocess, text output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    if check is not None:
        assert result.returncode == check, result.stderr
    return result


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
    """After pytest's own last line: say how many real-data tests were skipped, so a green run without the
    data is not mistaken for a full one."""
    result = yield
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [r for r in reporter.stats.get("skipped", []) if "the course data is not in" in str(r.longrepr)] \
        if reporter else []
    if skipped:
        reporter.write_line(f"{len(skipped)} tests on the real course data were skipped (not run); {RUN_REAL}",
                            yellow=True, bold=True)
    return result
