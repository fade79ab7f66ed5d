"""The installed package works from any folder: packaged configs, data/ and runs/ written where it runs."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from pipeline.config import PACKAGED
from tests.conftest import ROOT, run_cli, run_python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project as `pip install` builds it (a wheel, not the source tree), in a folder of its own."""
    source, site = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    for name in ("pyproject.toml", "README.md", "LICENSE", "configs", "pipeline"):  # a copy: the build writes
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2      # build/ and *.egg-info beside it
        copy(ROOT / name, source / name, **({"symlinks": True} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, source],
                   check=True, capture_output=True, timeout=300)
    return site


def catneuron(site, cwd, *args):
    """The installed console script, run in cwd with only the installed copy importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, site / "bin" / "catneuron", *map(str, args)], cwd=cwd,
                          env=dict(env, PYTHONPATH=str(site)), capture_output=True, text=True, timeout=300)


def test_the_installed_script_fetches_and_trains_in_an_empty_folder(installed, course_dir, tmp_path):
    assert not (installed / "pipeline" / "configs").is_symlink()  # the wheel holds the YAML files themselves
    result = catneuron(installed, tmp_path, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: catneuron ")
    assert catneuron(installed, tmp_path, "fetch", "--from", course_dir).returncode == 0
    result = catneuron(installed, tmp_path, "train", "--quiet")  # --config default: the packaged lesson's run
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("train accuracy: 99.04306220095694 %\ntest accuracy: 70.0 %\n")
    [run] = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "runs"] and run.name.startswith("default-")
    record = json.loads((run / "run.json").read_text())
    assert record["config_file"] == "packaged:default.yaml"  # not a path inside site-packages
    # a packaged sweep whose `base: default.yaml` is found beside it, inside the package
    result = catneuron(installed, tmp_path, "sweep", "--config", "lr_sweep", "--set", "train.num_iterations=10",
                       "--sweep-dir", "sweep")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "sweep").glob("lr*")) == ["lr0.0001", "lr0.001", "lr0.01"]
    result = catneuron(installed, tmp_path, "evaluate")
    assert result.stdout.startswith(f"run: {os.path.join('runs', run.name)} (the latest run, trained 20")
    # the demo folder comes from the installed package too (pipeline/demo.py), not from the repository's scripts/
    result = catneuron(installed, tmp_path, "demo-photos", "photos", "--count", "4", "--min-px", "40", "--max-px", "60")
    assert result.returncode == 0 and result.stdout == "wrote 4 JPEGs into photos/cat and photos/non-cat\n"
    assert sorted(p.name for p in (tmp_path / "photos" / "cat").iterdir()) == ["00001.jpg", "00003.jpg"]


def test_a_bare_name_means_a_packaged_config_and_an_unknown_one_lists_them(tmp_path):
    result = run_cli("train", "--config", "lr_sweep", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {PACKAGED / 'lr_sweep.yaml'}: has a sweep:")
    result = run_cli("train", "--config", "defualt", cwd=tmp_path)
    names = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))  # every config of the repository
    assert {"default", "folder_example", "lr_sweep"} <= set(names)
    assert result.stderr == (f"error: defualt: config file not found; did you mean default? (a path, or one of "
                             f"the packaged configs: {', '.join(names)})\n")


def test_the_packaged_configs_are_the_repositorys():
    assert (ROOT / "configs" / "default.yaml").samefile(PACKAGED / "default.yaml")  # one file, two names


@pytest.mark.parametrize("args", [["--debug", "train"], ["train", "--debug"]])
def test_global_flags_work_before_and_after_the_command(args, tmp_path):
    result = run_cli(*args, "--set", "data.dir=nowhere", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr and "nowhere/train_catvnoncat.h5" in result.stderr
    result = run_cli("--quiet", "train", "--set", "data.dir=nowhere", cwd=tmp_path)
    assert result.stderr.startswith("error: nowhere/train_catvnoncat.h5: no such file; get the course files with")


def test_the_help_names_the_way_it_was_run():
    assert run_cli("--help", check=0).stdout.startswith("usage: python -m pipeline [-h]")


def test_a_test_run_without_the_data_ends_with_how_to_run_the_skipped_tests(tmp_path):
    env = {"CATVNONCAT_DIR": str(tmp_path), "REQUIRE_REAL_DATA": ""}  # an empty folder: no course data
    result = run_python("-m", "pytest", "-p", "no:cacheprovider", "tests/test_course.py", env=env)
    assert result.returncode == 0
    last = result.stdout.splitlines()[-1]
    assert last.endswith(" tests on the real course data were skipped (not run); run them with "
                         "`make test DATA_FROM=<folder holding train_catvnoncat.h5 and test_catvnoncat.h5>`")
    stats = result.stdout.splitlines()[-2]  # pytest's own last line: "== 14 skipped in 0.15s =="
    assert f" {last.split()[0]} skipped in " in stats and "passed" not in stats


def test_make_clean_removes_every_generated_file_and_keeps_the_data(tmp_path):
    (tmp_path / "Makefile").write_bytes((ROOT / "Makefile").read_bytes())
    generated = [".venv/bin/python", ".pytest_cache/README.md", "catneuron.egg-info/PKG-INFO", "build/lib/x.py",
                 "pipeline/__pycache__/cli.cpython-311.pyc", "tests/__pycache__/conftest.cpython-311.pyc",
                 "runs/default-1/model.npz", "data/processed/photos/train.h5"]
    kept = ["data/raw/train_catvnoncat.h5", "data/raw/.gitkeep", "data/processed/.gitkeep", "data/photos/cat/a.jpg",
            "pipeline/cli.py"]
    for name in generated + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(["Makefile", *kept])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "data", "pipeline", "tests"]
    assert not list(tmp_path.rglob("__pycache__"))
    assert sorted(os.listdir(tmp_path / "data" / "processed")) == [".gitkeep"]
