"""Sweeps, compare and repeatable runs, through the real CLI on small generated HDF5 data (and the lesson's sweep
on the real data)."""
import csv
import json
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, spawn_python
from tests.test_data import write_split

DEFAULT = ROOT / "configs" / "default.yaml"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Course-schema HDF5 files of 8x8 images, cats brighter than non-cats give or take noise."""
    folder = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    for split, m in (("train", 40), ("test", 12)):
        y = np.arange(m) % 2
        x = rng.integers(0, 160, size=(m, 8, 8, 3)) + 60 * y[:, None, None, None]  # (m, h, w, 3)
        write_split(folder / f"{split}_catvnoncat.h5", split, x.astype(np.uint8), y)
    return folder


def sweep_config(folder, data, sweep, train="num_iterations: 60\n  print_every: 20"):
    path = folder / "s.yaml"
    path.write_text(f"base: {DEFAULT}\ndata:\n  dir: {data}\ntrain:\n  {train}\nsweep:\n  {sweep}\n")
    return path


def summary(sweep_dir):
    with open(sweep_dir / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_one_run_per_grid_point_and_the_summary(small_data, tmp_path):
    config = sweep_config(tmp_path, small_data, "train.learning_rate: [0.01, 0.001]\n  features.scaling: "
                                                "[divide255, standardize]")
    result = run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "sw", check=0)
    names = ["lr0.01_divide255", "lr0.01_standardize", "lr0.001_divide255", "lr0.001_standardize"]
    rows = summary(tmp_path / "sw")
    assert [r["run"] for r in rows] == names and {r["status"] for r in rows} == {"done"}
    assert [(r["train.learning_rate"], r["features.scaling"]) for r in rows][1] == ("0.01", "standardize")
    for row in rows:
        run = tmp_path / "sw" / row["run"]
        assert {p.name for p in run.iterdir()} >= {"config.yaml", "model.npz", "costs.csv", "metrics.json",
                                                   "misclassified", "run.json"}
        metrics = json.loads((run / "metrics.json").read_text())
        assert float(row["test_accuracy"]) == metrics["test"]["accuracy"]
        assert float(row["train_log_loss"]) == metrics["train"]["log_loss"]
        assert float(row["final_cost"]) == float((run / "costs.csv").read_text().splitlines()[-1].split(",")[1])
        assert f"learning_rate: {row['train.learning_rate']}" in (run / "config.yaml").read_text()
        record = json.loads((run / "run.json").read_text())
        assert record["overrides"] == [f"train.learning_rate={row['train.learning_rate']}",
                                       f"features.scaling={row['features.scaling']}"]
        assert float(row["duration_s"]) == record["duration_s"]
    assert result.stdout == (tmp_path / "sw" / "summary.md").read_text()
    assert result.stdout.splitlines()[0].startswith("| run | train.learning_rate | features.scaling | status |")
    # no validation split: no run is marked best, and the summary says why instead of ranking by test
    assert {r["best"] for r in rows} == {""} and "validation_log_loss" not in rows[0]
    assert result.stdout.splitlines()[-1] == ("no run marked best: there is no validation split (data.val_fraction "
                                              "is 0), and choosing settings by test metrics would fit them to the "
                                              "test set")
    resolved = (tmp_path / "sw" / "sweep.yaml").read_text()
    assert f"dir: {small_data}" in resolved and "num_iterations: 60" in resolved and "base:" not in resolved


def test_parallel_jobs_give_the_same_bytes_as_one_job(small_data, tmp_path):
    config = sweep_config(tmp_path, small_data, "train.learning_rate: [0.05, 0.01, 0.005]")
    run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "one", check=0)
    run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "two", "--jobs", "2", check=0)
    for name in ("lr0.05", "lr0.01", "lr0.005"):
        for file in ("model.npz", "metrics.json", "costs.csv", "config.yaml"):
            assert (tmp_path / "one" / name / file).read_bytes() == (tmp_path / "two" / name / file).read_bytes()
    assert (tmp_path / "one" / "lr0.05" / "model.npz").read_bytes() != \
        (tmp_path / "one" / "lr0.01" / "model.npz").read_bytes()


def test_the_same_config_twice_gives_identical_model_and_metrics(small_data, tmp_path):
    for name in ("a", "b"):
        run_cli("train", "--set", f"data.dir={small_data}", "--set", "train.num_iterations=30",
                "--run-dir", tmp_path / name, check=0)
        time.sleep(1.1)  # np.savez would stamp a different second into the zip
    for file in ("model.npz", "metrics.json", "costs.csv", "config.yaml"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    a, b = (json.loads((tmp_path / n / "run.json").read_text()) for n in "ab")
    assert a["config_sha256"] == b["config_sha256"] and a["started"] != b["started"]


def test_run_json_records_what_makes_the_run_repeatable(small_data, tmp_path):
    import hashlib

    import h5py
    import PIL

    run_cli("train", "--set", f"data.dir={small_data}", "--set", "train.num_iterations=5", "--set", "train.seed=3",
            "--run-dir", tmp_path / "r", check=0)
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["config_sha256"] == hashlib.sha256((tmp_path / "r" / "config.yaml").read_bytes()).hexdigest()
    assert record["overrides"] == [f"data.dir={small_data}", "train.num_iterations=5", "train.seed=3"]
    assert record["seed"] == 3 and record["config_file"] == "packaged:default.yaml"  # the default config, by name
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git_commit"] == head and isinstance(record["git_dirty"], bool)
    assert record["versions"]["numpy"] == np.__version__ and record["versions"]["h5py"] == h5py.__version__
    assert record["versions"]["Pillow"] == PIL.__version__ and record["versions"]["python"].startswith("3.")
    assert record["started"].endswith("+00:00") and record["duration_s"] > 0
    assert record["data_sha256"] == {str(small_data / name): hashlib.sha256((small_data / name).read_bytes()).hexdigest()
                                     for name in ("train_catvnoncat.h5", "test_catvnoncat.h5")}


def test_compare_lists_the_differing_value_and_the_metric_changes(small_data, tmp_path):
    for name, rate in (("a", "0.01"), ("b", "0.05")):
        run_cli("train", "--set", f"data.dir={small_data}", "--set", "train.num_iterations=40", "--set",
                f"train.learning_rate={rate}", "--run-dir", tmp_path / name, check=0)
    result = run_cli("compare", tmp_path / "a", tmp_path / "b", "--json", check=0)
    table = json.loads(result.stdout)
    assert table["params"] == {"train.learning_rate": [0.01, 0.05]}  # only the value that differs
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in "ab")
    assert table["metrics"]["test_log_loss"] == [a["test"]["log_loss"], b["test"]["log_loss"]]
    assert table["change"]["test_log_loss"] == [None, b["test"]["log_loss"] - a["test"]["log_loss"]]
    assert table["change"]["train_log_loss"][1] < 0  # the larger step got further in 40 steps
    text = run_cli("compare", tmp_path / "a", tmp_path / "b", check=0).stdout.splitlines()
    assert text[0].split() == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert text[1].split() == ["train.learning_rate", "0.01", "0.05"]
    delta = b["train"]["log_loss"] - a["train"]["log_loss"]
    assert [line for line in text if line.startswith("train_log_loss")][0].split() == \
        ["train_log_loss", f"{a['train']['log_loss']:.6g}", f"{b['train']['log_loss']:.6g}", f"({delta:+.6g})"]
    acc = [m["test"]["accuracy"] for m in (a, b)]
    assert [line for line in text if line.startswith("test_accuracy ")][0].split() == \
        ["test_accuracy", f"{100 * acc[0]:.2f}", "%", f"{100 * acc[1]:.2f}", "%", f"({100 * (acc[1] - acc[0]):+.2f}",
         "points)"]  # shares in %, as everywhere else
    md = run_cli("compare", tmp_path / "a", tmp_path / "b", "--md", check=0).stdout.splitlines()
    assert md[:3] == [f"|  | {tmp_path / 'a'} | {tmp_path / 'b'} |", "| --- | --- | --- |",
                      "| train.learning_rate | 0.01 | 0.05 |"]


def test_compare_expands_a_sweep_into_its_runs(small_data, tmp_path):
    config = sweep_config(tmp_path, small_data, "train.learning_rate: [0.01, 0.001]")
    run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "sw", check=0)
    table = json.loads(run_cli("compare", tmp_path / "sw", "--json", check=0).stdout)
    assert table["runs"] == [str(tmp_path / "sw" / "lr0.01"), str(tmp_path / "sw" / "lr0.001")]
    assert table["params"] == {"train.learning_rate": [0.01, 0.001]}


def test_a_sweep_over_solver_and_l2_and_compare_shows_convergence(small_data, tmp_path):
    config = sweep_config(tmp_path, small_data, "train.solver: [primal, lbfgs]\n  train.l2: [0.5, 5.0]",
                          train="num_iterations: 60\n  print_every: 20")
    run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "sw", check=0)
    rows = summary(tmp_path / "sw")
    assert [r["status"] for r in rows] == ["done"] * 4
    table = json.loads(run_cli("compare", tmp_path / "sw", "--json", check=0).stdout)
    assert table["params"]["train.solver"] == ["primal", "primal", "lbfgs", "lbfgs"]
    assert table["params"]["train.l2"] == [0.5, 5.0, 0.5, 5.0]
    records = [json.loads((tmp_path / "sw" / r["run"] / "run.json").read_text())["training"] for r in rows]
    assert [t["converged"] for t in records] == [False, False, True, True]
    assert table["converged"][:2] == ["no (iteration limit), 60 iterations"] * 2
    assert table["converged"][2:] == [f"yes, {t['iterations']} iterations" for t in records[2:]]
    text = run_cli("compare", tmp_path / "sw", check=0).stdout.splitlines()
    assert [line for line in text if line.startswith("converged")][0].split()[1:4] == ["no", "(iteration", "limit),"]


def test_interrupted_sweep_keeps_finished_runs_and_resume_completes_it(small_data, tmp_path):
    # the middle point is long enough to be interrupted; the others are quick
    config = sweep_config(tmp_path, small_data, "train.num_iterations: [10, 30000, 20]", train="print_every: 1000")
    sw = tmp_path / "sw"
    proc = spawn_python("-m", "pipeline", "sweep", "--config", config, "--sweep-dir", sw, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ((sw / "it10" / "run.json").exists() and (sw / "it30000.incomplete").exists()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"finish with: python -m pipeline sweep --resume {sw}" in err and "Traceback" not in err
    assert [(r["run"], r["status"]) for r in summary(sw)] == [("it10", "done"), ("it30000", "incomplete"),
                                                              ("it20", "pending")]
    assert not (sw / "it30000").exists() and not (sw / "it20").exists()
    finished = (sw / "it10" / "run.json").read_bytes()
    (sw / "it20.incomplete").mkdir()  # as a killed sweep would leave it
    (sw / "it20.incomplete" / "model.npz").write_bytes(b"half")

    result = run_cli("sweep", "--resume", sw, check=0)
    assert [(r["run"], r["status"]) for r in summary(sw)] == [("it10", "done"), ("it30000", "done"),
                                                              ("it20", "done")]
    assert (sw / "it10" / "run.json").read_bytes() == finished  # not redone
    assert sorted(p.name for p in sw.iterdir()) == ["cost_curves.png", "cost_curves.svg", "it10", "it20", "it30000",
                                                    "report.html", "summary.csv", "summary.md", "sweep.yaml"]
    assert "| it30000 | 30000 | done |" in result.stdout


def test_interrupted_parallel_sweep_marks_the_running_point_incomplete(small_data, tmp_path):
    config = sweep_config(tmp_path, small_data, "train.num_iterations: [10, 300000, 20]", train="print_every: 1000")
    sw = tmp_path / "sw"
    proc = spawn_python("-m", "pipeline", "sweep", "--config", config, "--sweep-dir", sw, "--jobs", "2",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ((sw / "it10" / "run.json").exists() and (sw / "it20" / "run.json").exists()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert [(r["run"], r["status"]) for r in summary(sw)] == [("it10", "done"), ("it300000", "incomplete"),
                                                              ("it20", "done")]
    assert not (sw / "it300000").exists() and out == ""


def test_a_diverging_point_is_recorded_as_failed_and_the_others_finish(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):  # random 2x2 images: the labels cannot be learnt, a huge step diverges
        write_split(tmp_path / f"{split}_catvnoncat.h5", split, rng.integers(0, 256, size=(40, 2, 2, 3), dtype=np.uint8),
                    np.arange(40) % 2)
    config = sweep_config(tmp_path, tmp_path, "train.learning_rate: [0.01, 100000.0]", train="num_iterations: 1100")
    result = run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "sw")
    assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith(
        f"error: {tmp_path / 'sw'}: 1 of 2 runs failed; lr100000.0: training diverged")
    assert [(r["run"], r["status"]) for r in summary(tmp_path / "sw")] == [("lr0.01", "done"),
                                                                          ("lr100000.0", "failed")]
    # the table and the report are still written, the failed point marked in both
    assert "| lr100000.0 | 100000.0 | failed |" in result.stdout
    assert result.stdout == (tmp_path / "sw" / "summary.md").read_text()
    assert "failed" in (tmp_path / "sw" / "report.html").read_text()
    assert not (tmp_path / "sw" / "lr100000.0").exists() and not (tmp_path / "sw" / "lr100000.0.incomplete").exists()


@pytest.mark.parametrize("sweep, sets, message", [
    ("train.learning_rat: [0.1]", [], "s.yaml: sweep: unknown key 'train.learning_rat' (did you mean "
                                      "'train.learning_rate'?)"),
    ("train.learning_rate: 0.1", [], "s.yaml: sweep: train.learning_rate must be a non-empty list of values, got 0.1"),
    ("train.learning_rate: [0.1, -1]", [], "s.yaml: sweep: train.learning_rate must be > 0, got -1"),
    ("train.learning_rate: [0.1, 0.1]", [], "s.yaml: sweep: two points would share the run folder lr0.1"),
    ("[1, 2]", [], "s.yaml: sweep must map section.key to a list of values"),
    ("train.learning_rate: [0.1]", ["train.learning_rate=0.2"],
     "error: --set train.learning_rate=0.2: s.yaml sweeps this key; change its sweep: list instead"),
    ("train.learning_rate: [0.1]", ["data.dir=nowhere"], "error: nowhere/train_catvnoncat.h5: no such file"),
])
def test_bad_sweep_is_one_line_and_leaves_no_sweep_folder(small_data, tmp_path, sweep, sets, message):
    config = sweep_config(tmp_path, small_data, sweep)
    args = ["sweep", "--config", config.name, "--sweep-dir", "sw"]
    for s in sets:
        args += ["--set", s]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "sw").exists()


@pytest.mark.parametrize("args, message", [
    (["sweep", "--config", DEFAULT], f"error: {DEFAULT}: no sweep: block"),
    (["sweep", "--resume", "nowhere"], "error: nowhere: not a sweep folder (no sweep.yaml)"),
    (["train", "--config", ROOT / "configs" / "lr_sweep.yaml"], "lr_sweep.yaml: has a sweep: block; run it with "
                                                                "`python -m pipeline sweep --config"),
    (["compare", "."], "error: .: not a run folder (no metrics.json) nor a sweep folder (no summary.csv)"),
])
def test_sweep_and_compare_refusals(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_resume_refuses_set_and_compare_refuses_a_broken_run(small_data, tmp_path):
    config = sweep_config(tmp_path, small_data, "train.learning_rate: [0.01]", train="num_iterations: 5")
    run_cli("sweep", "--config", config, "--sweep-dir", tmp_path / "sw", check=0)
    result = run_cli("sweep", "--resume", tmp_path / "sw", "--set", "train.seed=1")
    assert result.returncode == 1 and "--set and --sweep-dir cannot change a sweep being resumed" in result.stderr
    (tmp_path / "sw" / "lr0.01" / "metrics.json").write_text("{not json")
    result = run_cli("compare", tmp_path / "sw")
    assert result.returncode == 1 and result.stderr.startswith(
        f"error: {tmp_path / 'sw' / 'lr0.01' / 'metrics.json'}: not valid JSON")
    assert run_cli("sweep", "--config", config, "--jobs", "0").returncode == 2


def test_the_lessons_learning_rate_sweep_on_the_real_data(course_dir, tmp_path):
    result = run_cli("sweep", "--config", ROOT / "configs" / "lr_sweep.yaml", "--set", f"data.dir={course_dir}",
                     "--sweep-dir", tmp_path / "sw", "--jobs", "2", check=0)
    rows = summary(tmp_path / "sw")
    # the lesson: 0.01 -> 99.52 % / 68 %, 0.001 -> 88.99 % / 64 %, 0.0001 -> 68.42 % / 36 %
    assert [(r["run"], float(r["train_accuracy"]), float(r["test_accuracy"])) for r in rows] == [
        ("lr0.01", 208 / 209, 34 / 50), ("lr0.001", 186 / 209, 32 / 50), ("lr0.0001", 143 / 209, 18 / 50)]
    assert "| lr0.01 | 0.01 | done |" in result.stdout and "| 99.52 % | 68.00 % |" in result.stdout


def test_a_reader_that_goes_away_is_not_an_error(small_data, tmp_path):
    """`compare ... | head -1`: the pipe closes before compare writes; no message, no traceback."""
    import subprocess

    run_cli("train", "--set", f"data.dir={small_data}", "--set", "train.num_iterations=5", "--run-dir",
            tmp_path / "a", check=0)
    proc = spawn_python("-m", "pipeline", "compare", tmp_path / "a", tmp_path / "a", stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait() == 141 and err == ""


def test_a_point_name_is_one_bounded_file_name():
    from pipeline.sweep import POINT_NAME_MAX, point_name

    name = point_name({"data.name": "../" + "x" * 500, "train.learning_rate": 0.01})
    assert name.startswith("name-") and "/" not in name and len(name) == POINT_NAME_MAX
