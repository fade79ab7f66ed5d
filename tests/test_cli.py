"""Bad input through the real CLI: one line on stderr naming the problem, exit 1, no traceback."""
import pytest

from tests.conftest import ROOT, run_cli

DEFAULT = ROOT / "configs" / "default.yaml"


@pytest.mark.parametrize("args, message", [
    (["train", "--config", DEFAULT, "--set", "data.dir=nowhere"], "error: nowhere/train_catvnoncat.h5: no such file"),
    (["train", "--config", "missing.yaml"], "error: missing.yaml: config file not found"),
    (["train", "--config", DEFAULT], "error: data/raw/train_catvnoncat.h5: no such file"),
    (["train", "--config", DEFAULT, "--set", "train.learning_rat=1"], "(did you mean 'train.learning_rate'?)"),
    (["evaluate", "--run", "no-such-run"], "error: no-such-run/config.yaml: config file not found"),
    (["fetch", "--from", "no/such/folder"], "error: no/such/folder: not a folder"),
])
def test_bad_input_is_one_line_without_traceback(args, message, tmp_path):
    result = run_cli(*args, cwd=tmp_path)  # an empty folder: no data, no runs
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


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
