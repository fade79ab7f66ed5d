"""Bad input through the real CLI: one line on stderr naming the problem, exit 1, no traceback."""
import json
import time

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, spawn_python

DEFAULT = ROOT / "configs" / "default.yaml"


@pytest.mark.parametrize("args, message", [
    (["train", "--config", DEFAULT, "--set", "data.dir=nowhere"], "error: nowhere/train_catvnoncat.h5: no such file"),
    (["train", "--config", "missing.yaml"], "error: missing.yaml: config file not found"),
    (["train", "--config", DEFAULT], "error: data/raw/train_catvnoncat.h5: no such file"),
    (["train", "--config", DEFAULT, "--set", "train.learning_rat=1"], "(did you mean 'train.learning_rate'?)"),
    (["evaluate", "--run", "no-such-run"], "error: no-such-run: not a run folder (no config.yaml)"),
    (["fetch", "--from", "no/such/folder"], "error: no/such/folder: not a folder"),
])
def test_bad_input_is_one_line_without_traceback(args, message, tmp_path):
    result = run_cli(*args, cwd=tmp_path)  # an empty folder: no data, no runs
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_misspelt_config_and_a_file_given_to_fetch_get_what_was_meant(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cats.yaml").write_text("train:\n  seed: 1\n")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "train_catvnoncat.h5").write_bytes(b"not the course file")
    for args, message in ((["train", "--config", "folder_exmaple"],
                           "error: folder_exmaple: config file not found; did you mean folder_example? (a path, "),
                          (["sweep", "--config", "mine/cat.yaml"],
                           "error: mine/cat.yaml: config file not found; did you mean mine/cats.yaml?\n"),
                          (["fetch", "--from", "downloads/train_catvnoncat.h5", "--dest", "raw"],
                           "error: downloads/train_catvnoncat.h5: a file; --from takes the folder holding the "
                           "files: did you mean downloads?\n")):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.startswith(message) and result.stderr.count("\n") == 1
    result = run_cli("train", "--config", "mine/zebra.yaml", cwd=tmp_path)  # nothing close: no guess
    assert result.stderr == "error: mine/zebra.yaml: config file not found\n"


def test_demo_photos_writes_both_classes_and_refuses_an_existing_folder_or_bad_sizes(tmp_path):
    result = run_cli("demo-photos", "photos", "--count", "6", "--min-px", "32", "--max-px", "48", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == "wrote 6 JPEGs into photos/cat and photos/non-cat\n"
    assert [len(list((tmp_path / "photos" / c).glob("*.jpg"))) for c in ("cat", "non-cat")] == [3, 3]
    for args, message in ((["photos"], "error: photos: already exists; give a new folder for the demo photos\n"),
                          (["new", "--min-px", "90", "--max-px", "40"],
                           "error: --min-px 90 --max-px 40: need 16 <= min-px <= max-px\n"),
                          (["new", "--count", "1"], "error: --count 1: must be at least 2 (one photo of each class)\n")):
        result = run_cli("demo-photos", *args, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr == message
    assert not (tmp_path / "new").exists()


def test_debug_shows_the_traceback():
    result = run_cli("train", "--set", "data.dir=nowhere", "--debug")  # default config from the repo
    assert result.returncode == 1 and "Traceback" in result.stderr and "PipelineError" in result.stderr


def test_evaluate_without_any_run_says_to_train_first(tmp_path):
    result = run_cli("evaluate", cwd=tmp_path)
    assert result.returncode == 1 and "runs: no run with a model.npz found; train one first" in result.stderr


def test_a_failed_training_leaves_no_run_folder(tmp_path):
    result = run_cli("train", "--set", "data.dir=nowhere", "--run-dir", tmp_path / "run")
    assert result.returncode == 1 and not (tmp_path / "run").exists()


def test_usage_errors_exit_2():
    assert run_cli("train", "--no-such-flag").returncode == 2
    assert run_cli().returncode == 2


def test_an_interrupted_run_leaves_no_half_written_folder(tmp_path):
    """Ctrl-C while the run folder is being written: the folder goes, so `latest_run` never picks it."""
    import signal
    import subprocess

    from tests.test_data import images, write_split

    for split, m in (("train", 6), ("test", 4)):
        write_split(tmp_path / f"{split}_catvnoncat.h5", split, images(m), np.arange(m) % 2)
    # a long run, interrupted during training: nothing has been written yet, the claimed folder goes
    proc = spawn_python("-m", "pipeline", "train", "--config", DEFAULT, "--set", f"data.dir={tmp_path}", "--set",
                        "train.num_iterations=100000000", "--run-dir", tmp_path / "run", cwd=tmp_path,
                        stderr=subprocess.PIPE)
    while not (tmp_path / "run").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    with proc.stderr:
        assert proc.wait(timeout=60) == 130 and "interrupted" in proc.stderr.read()
    assert not (tmp_path / "run").exists()


def test_evaluate_takes_the_threshold_of_its_config_overrides(tmp_path):
    from tests.test_data import images, write_split

    for split, m in (("train", 8), ("test", 6)):
        write_split(tmp_path / f"{split}_catvnoncat.h5", split, images(m), np.arange(m) % 2)
    run_cli("train", "--config", DEFAULT, "--set", f"data.dir={tmp_path}", "--set", "train.num_iterations=20",
            "--run-dir", tmp_path / "run", check=0)
    run_cli("evaluate", "--run", tmp_path / "run", "--set", "evaluate.threshold=0.999", check=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["confusion"][0][1] == metrics["test"]["confusion"][1][1] == 0  # nothing is a cat
