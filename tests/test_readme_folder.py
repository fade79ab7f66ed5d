"""The README's own-folder section, run as written in a fresh clone, from a shell with no virtual environment.

The clone reuses this checkout's .venv through a symlink (no network, no install): its pyproject.toml is dated
back so that make finds the venv up to date, and a dry run of every make line checks, before it runs, that
nothing would be installed into the shared venv or fetched.
"""
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

VENV = ROOT / ".venv"


def section(readme, heading):
    """The `$ ` lines of the README section under heading (up to the next `## `)."""
    text = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line[2:].split("  #")[0].strip() for line in text.splitlines() if line.startswith("$ ")]


def shell(command, cwd, env, timeout=900):
    """Run command with bash in its own process group, killed whole on a timeout; (exit code, stdout + stderr)."""
    process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)  # make and the python it started
        process.communicate()
        raise
    return process.returncode, out


@pytest.mark.skipif(not (ROOT / ".git").exists() or not (VENV / ".installed").is_file() or not shutil.which("make"),
                    reason="needs a git checkout, make, and an installed .venv")
def test_the_readme_own_folder_commands_work_as_written_in_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(VENV.resolve())
    os.utime(clone / "pyproject.toml", (0, 0))  # older than .venv/.installed: make does not reinstall
    venv_bin = str(VENV.resolve() / "bin")
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != Path(venv_bin)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(path)
    commands = section((clone / "README.md").read_text(encoding="utf-8"), "Train on your own folder")
    assert commands[0] == "make demo-photos" and any(c.startswith("make train") for c in commands)
    outputs = []
    for command in commands:
        if command.startswith("make "):
            code, plan = shell(f"make -n {command[5:]}", clone, env)
            assert code == 0 and not re.search(r"pip install|-m venv| fetch", plan), plan
        code, out = shell(command, clone, env)
        assert code == 0, f"`{command}` failed:\n{out}"
        outputs.append(out)
    assert "wrote 400 JPEGs into data/photos/cat and data/photos/non-cat" in outputs[0]
    [run] = re.findall(r"^run folder:?\s+(runs/folder_example-\S+)$", outputs[-1], re.M)
    assert (clone / run / "report.html").is_file() and (clone / run / "model.npz").is_file()
