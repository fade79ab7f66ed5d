"""The gradient check: it passes the lesson's propagate, catches a wrong one, and its script refuses bad input."""
import h5py
import numpy as np
import pytest

from pipeline.gradcheck import TOLERANCE, gradient_check, relative_difference
from pipeline.model import propagate
from tests.conftest import run_python

SCRIPT = "scripts/gradient_check.py"


def random_problem(n_x=5, m=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, 1)), 0.3, rng.normal(size=(n_x, m)), rng.integers(0, 2, size=(1, m))


def test_propagate_passes():
    diff = gradient_check(*random_problem())
    assert set(diff) == {"dw", "db", "all"} and max(diff.values()) < TOLERANCE


@pytest.mark.parametrize("mistake", [
    lambda g, X: {"dw": g["dw"] * X.shape[1], "db": g["db"]},  # forgot the 1/m in dw
    lambda g, X: {"dw": -g["dw"], "db": -g["db"]},  # dz = y - a instead of a - y
    lambda g, X: {"dw": g["dw"], "db": g["db"] + 0.01},  # a small slip in db only
])
def test_a_wrong_backward_pass_is_caught(mistake):
    def wrong(w, b, X, Y):
        grads, cost = propagate(w, b, X, Y)
        return mistake(grads, X), cost

    assert gradient_check(*random_problem(), backward=wrong)["all"] > 1e-3


def test_relative_difference():
    a = np.array([[3.0], [4.0]])
    assert relative_difference(a, a) == 0.0 and relative_difference(0.0, 0.0) == 0.0
    assert relative_difference(a, -a) == 1.0 and relative_difference(a, np.zeros((2, 1))) == 1.0


@pytest.fixture
def small_data(tmp_path):
    """A real HDF5 training file in the course's schema: 6 random 4x4 images."""
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "train_catvnoncat.h5", "w") as f:
        f["train_set_x"] = rng.integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
        f["train_set_y"] = np.array([1, 0, 0, 1, 1, 0])
        f["list_classes"] = np.array([b"non-cat", b"cat"])
    return tmp_path


def test_script_on_small_data(small_data):
    result = run_python(SCRIPT, "--data-dir", small_data, "--examples", "4", check=0)
    lines = result.stdout.splitlines()
    assert lines[0] == (f"gradient check on the first 4 training examples of {small_data / 'train_catvnoncat.h5'}:"
                        " n_x = 48, epsilon = 1e-07")
    assert [line.split(":")[0] for line in lines[1:4]] == [f"relative difference {k}" for k in ("dw", "db", "all")]
    assert all(float(line.split(": ")[1]) < TOLERANCE for line in lines[1:4])
    assert lines[4] == "ok: below 1e-07, the analytic gradients of propagate are right"


def test_script_fails_when_the_gradients_disagree(small_data):
    # a huge step makes the finite differences themselves inaccurate: the check must then say no
    result = run_python(SCRIPT, "--data-dir", small_data, "--epsilon", "0.9")
    assert result.returncode == 1
    assert result.stderr.startswith("error: the relative difference ") and result.stderr.endswith(
        " is not below 1e-07: the analytic gradients are wrong\n")


@pytest.mark.parametrize("args, message", [
    (["--data-dir", "nowhere"], "error: nowhere/train_catvnoncat.h5: no such file"),
    (["--examples", "0"], "error: --examples: must be between 1 and 6 (the training examples in {dir}/"
                          "train_catvnoncat.h5), got 0"),
    (["--examples", "7"], "got 7"),
    (["--epsilon", "0"], "error: --epsilon: must be between 0 and 1 (exclusive), got 0.0"),
])
def test_script_refuses_bad_input_in_one_line(small_data, args, message):
    result = run_python(SCRIPT, "--data-dir", small_data, *args)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message.format(dir=small_data) in result.stderr
    assert "Traceback" not in result.stderr


def test_script_refuses_a_file_that_is_not_hdf5(tmp_path):
    (tmp_path / "train_catvnoncat.h5").write_text("not hdf5")
    result = run_python(SCRIPT, "--data-dir", tmp_path)
    assert result.returncode == 1 and result.stderr == f"error: {tmp_path}/train_catvnoncat.h5: not an HDF5 file\n"


def test_script_debug_shows_the_traceback(tmp_path):
    result = run_python(SCRIPT, "--data-dir", tmp_path, "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr and "PipelineError" in result.stderr
