"""Run and sweep folders are untrusted input (pipeline/runfiles.py): FIFOs, links to devices or out of the folder,
huge or deeply nested files, NUL bytes and escapes in what compare, report, evaluate, predict and sweep --resume
read give one `error:` line naming the file, quickly, and --json stays JSON. See docs/security.md."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_data import write_split
from tests.test_hostile_inputs import refused

DEFAULT = ROOT / "configs" / "default.yaml"


def cli(*args, timeout=60):
    """The CLI in a subprocess that is killed after timeout seconds (a FIFO must not hang the test)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def sweep_made(tmp_path_factory):
    """A finished sweep of two points on small course-schema files: sw/lr0.01 and sw/lr0.05."""
    folder = tmp_path_factory.mktemp("runfiles")
    rng = np.random.default_rng(0)
    for split, m in (("train", 20), ("test", 8)):
        y = np.arange(m) % 2
        x = rng.integers(0, 160, size=(m, 4, 4, 3)) + 60 * y[:, None, None, None]  # (m, h, w, 3)
        write_split(folder / f"{split}_catvnoncat.h5", split, x.astype(np.uint8), y)
    config = folder / "s.yaml"
    config.write_text(f"base: {DEFAULT}\ndata:\n  dir: {folder}\ntrain:\n  num_iterations: 20\n  print_every: 10\n"
                      "sweep:\n  train.learning_rate: [0.01, 0.05]\n")
    result = cli("sweep", "--config", config, "--sweep-dir", folder / "sw", timeout=300)
    assert result.returncode == 0, result.stderr
    return folder / "sw"


@pytest.fixture
def sw(sweep_made, tmp_path):
    """A fresh copy of the sweep folder to spoil."""
    return shutil.copytree(sweep_made, tmp_path / "sw", symlinks=True)


def replace(path, make):
    path.unlink()
    make(path)


def test_a_fifo_is_refused_without_blocking(sw):
    replace(sw / "lr0.01" / "run.json", os.mkfifo)
    refused(cli("compare", sw / "lr0.01", sw / "lr0.05"), f"{sw / 'lr0.01' / 'run.json'}: refused: not a regular file")
    replace(sw / "lr0.05" / "costs.csv", os.mkfifo)
    refused(cli("report", sw / "lr0.05"), f"{sw / 'lr0.05' / 'costs.csv'}: refused: not a regular file")
    replace(sw / "lr0.05" / "config.yaml", os.mkfifo)
    refused(cli("evaluate", "--run", sw / "lr0.05"), f"{sw / 'lr0.05' / 'config.yaml'}", "not a regular file")


@pytest.mark.parametrize("target", ["/dev/zero", "../lr0.05/metrics.json"])
def test_a_link_leading_out_of_the_run_folder_is_refused(sw, target):
    replace(sw / "lr0.01" / "metrics.json", lambda p: p.symlink_to(target))
    refused(cli("compare", sw / "lr0.01", sw / "lr0.05"),
            f"{sw / 'lr0.01' / 'metrics.json'}: refused: a link leading out of {sw / 'lr0.01'}")


def test_a_link_inside_the_run_folder_is_followed(sw):
    os.rename(sw / "lr0.01" / "metrics.json", sw / "lr0.01" / "kept.json")
    (sw / "lr0.01" / "metrics.json").symlink_to("kept.json")
    assert cli("compare", sw / "lr0.01", sw / "lr0.05").returncode == 0


def test_a_model_linked_out_of_its_run_folder_is_refused(sw):
    replace(sw / "lr0.01" / "model.npz", lambda p: p.symlink_to(sw / "lr0.05" / "model.npz"))
    refused(cli("predict", "--model", sw / "lr0.01", ROOT / "README.md"), f"{sw / 'lr0.01' / 'model.npz'}: refused")
    refused(cli("report", sw / "lr0.01"), f"{sw / 'lr0.01' / 'model.npz'}: refused: a link leading out")


def test_a_huge_metrics_file_is_refused_by_its_size(sw):
    with open(sw / "lr0.01" / "metrics.json", "r+b") as f:
        f.truncate(400 * 2**20)  # sparse: 400 MB that take no disk
    refused(cli("compare", sw / "lr0.01", sw / "lr0.05"),
            f"{sw / 'lr0.01' / 'metrics.json'}: refused: {400 * 2**20} bytes, over the limit")


def test_a_huge_csv_field_and_deep_json_are_refused(sw):
    (sw / "lr0.01" / "costs.csv").write_text("iteration,cost\n0," + "9" * 200_000 + "\n")
    refused(cli("compare", sw / "lr0.01", sw / "lr0.05"), f"{sw / 'lr0.01' / 'costs.csv'}: not valid CSV")
    refused(cli("report", sw / "lr0.01"), f"{sw / 'lr0.01' / 'costs.csv'}: not valid CSV: field larger than")
    (sw / "lr0.05" / "run.json").write_text("[" * 200_000 + "]" * 200_000)
    refused(cli("compare", sw / "lr0.05"), f"{sw / 'lr0.05' / 'run.json'}: refused: JSON nested deeper than 32")


def test_a_nul_in_a_sweep_summary_is_refused(sw):
    summary = sw / "summary.csv"
    summary.write_bytes(summary.read_bytes().replace(b"lr0.01", b"lr0\x00.01"))
    refused(cli("compare", sw), f"{summary}: refused: it holds a NUL byte")
    refused(cli("report", sw), f"{summary}: refused: it holds a NUL byte")


def test_metric_names_cannot_forge_lines_and_json_stays_json(sw):
    for run in ("lr0.01", "lr0.05"):
        metrics = json.loads((sw / run / "metrics.json").read_text())
        metrics["test"]["\x1b[31m\nerror: forged"] = 0.5
        metrics["test"]["accuracy"] = float("nan") if run == "lr0.01" else float("inf")
        (sw / run / "metrics.json").write_text(json.dumps(metrics))
    result = cli("compare", sw / "lr0.01", sw / "lr0.05")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and not any(line.startswith("error") for line in result.stdout.splitlines())
    assert "test_\\x1b[31m\\nerror: forged  0.5" in result.stdout
    result = cli("compare", sw / "lr0.01", sw / "lr0.05", "--json")
    table = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert table["metrics"]["test_accuracy"] == [None, None]


def test_resume_refuses_a_linked_incomplete_point(sw, tmp_path):
    shutil.rmtree(sw / "lr0.05")
    (tmp_path / "elsewhere").mkdir()
    (sw / "lr0.05.incomplete").symlink_to(tmp_path / "elsewhere")
    refused(cli("sweep", "--resume", sw), f"{sw / 'lr0.05.incomplete'}: refused: not the folder of an interrupted")
    assert (tmp_path / "elsewhere").is_dir()


def test_resume_refuses_a_point_folder_that_is_not_a_finished_run(sw):
    replace(sw / "lr0.05" / "run.json", os.mkfifo)
    refused(cli("sweep", "--resume", sw), f"{sw / 'lr0.05'}: refused: not a finished run")
    (sw / "sweep.yaml").rename(sw.parent / "elsewhere.yaml")
    (sw / "sweep.yaml").symlink_to(sw.parent / "elsewhere.yaml")
    refused(cli("sweep", "--resume", sw), f"{sw / 'sweep.yaml'}: refused: a link leading out of {sw}")


@pytest.mark.parametrize("file, change, words", [
    ("run.json", {"versions": ["x"]}, "run.json: versions must be an object of plain values, got ['x']"),
    ("run.json", {"training": {"learning_rate": "fast"}},
     "run.json: training.learning_rate must be a number or null, got 'fast'"),
    ("run.json", {"duration_s": 10**400}, "run.json: duration_s must be a number of seconds from 0 to 1e9, got 1000"),
    ("run.json", {"started": "yesterday"}, None),  # not a time: the run's end is then its model file's time
    ("metrics.json", {"test": {"accuracy": "high"}}, "metrics.json: test metrics must be numbers and a 2x2"),
    ("metrics.json", {"train": {"confusion": [[1, 2], [3]]}}, "metrics.json: train metrics must be numbers and a 2x2"),
    ("metrics.json", {"test": {"roc_auc": [0.5]}}, "metrics.json: test metrics must be numbers and a 2x2"),
    ("metrics.json", {"test": {"roc_auc": None}}, None),  # as evaluate writes it for a test set of one class
])
def test_run_files_of_the_wrong_shape_are_refused_at_the_door(sw, file, change, words):
    path = sw / "lr0.01" / file
    value = json.loads(path.read_text())
    for key, new in change.items():
        value[key] = {**value[key], **new} if isinstance(new, dict) and key in ("train", "test") else new
    path.write_text(json.dumps(value))
    result = cli("report", sw / "lr0.01")
    if words is None:
        assert result.returncode == 0, result.stderr
    else:
        refused(result, f"{path}: " + words.split(": ", 1)[1])


def test_a_run_that_is_a_link_loop_is_one_line(sw):
    shutil.rmtree(sw / "lr0.01")
    (sw / "lr0.01").symlink_to("lr0.01")  # a link to itself
    refused(cli("compare", sw), f"{sw / 'lr0.01' / 'config.yaml'}", "Too many levels of symbolic links")
