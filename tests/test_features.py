"""The scaled blocks that in-memory and streaming training build: the numbers of features(), rounded once to the
training dtype; and in-memory training holds one scaled copy of X (measured on a real `train` process)."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pipeline.config import Config, TrainConfig
from pipeline.data import Dataset
from pipeline.features import features, fit_scaler, flatten, scaled_block
from pipeline.train import training_features
from tests.conftest import ROOT
from tests.test_data import images

# `python -m pipeline` printing its own peak RSS (VmHWM) on stderr as it exits: a child's rusage can report the
# RSS of pytest itself instead (execve keeps the larger high-water mark of the memory it replaces)
PEAK_RSS = ("import atexit, runpy, sys; atexit.register(lambda: print(next(line for line in open('/proc/self/status') "
            "if line.startswith('VmHWM')), file=sys.stderr)); sys.argv[0] = 'pipeline'; "
            "runpy.run_module('pipeline', run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_divide255_blocks_are_features_rounded_once_for_every_pixel_value(dtype):
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)  # every value, in each channel
    scaler = fit_scaler("divide255", None)
    block = scaled_block(x, scaler, dtype)
    assert block.dtype == dtype and block.shape == (768, 1) and block.flags.f_contiguous
    np.testing.assert_array_equal(block, features(x, scaler).astype(dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_standardize_blocks_are_features_rounded_once(dtype):
    x = images(30, size=4, seed=7)
    scaler = fit_scaler("standardize", flatten(x))
    np.testing.assert_array_equal(scaled_block(x, scaler, dtype), features(x, scaler).astype(dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_in_memory_features_are_one_fortran_array_in_the_training_dtype(dtype):
    x = images(37, size=5, seed=2)
    config = Config(train=TrainConfig(dtype=dtype))
    X, scaler = training_features(Dataset(x=x, y=np.zeros((1, 37)), classes=("a", "b"), path=None), config)
    assert isinstance(X, np.ndarray) and X.dtype == dtype and X.flags.f_contiguous and X.shape == (75, 37)
    np.testing.assert_array_equal(X, features(x, scaler).astype(dtype))


def test_in_memory_training_holds_one_scaled_copy_of_x(tmp_path):
    """A real `train` of 3000 images of 64 x 64 in float32: peak RSS within 1.25 x the copy + 150 MiB (the
    uint8 images are a quarter of the copy); holding a float64 copy as well would need about 2.3 x."""
    m, rng = 3000, np.random.default_rng(0)
    for split, count in (("train", m), ("test", 20)):
        with h5py.File(tmp_path / f"{split}_catvnoncat.h5", "w") as f:
            f.create_dataset(f"{split}_set_x", data=rng.integers(0, 256, (count, 64, 64, 3), dtype=np.uint8))
            f.create_dataset(f"{split}_set_y", data=np.arange(count) % 2)
            f.create_dataset("list_classes", data=np.array([b"non-cat", b"cat"]))
    args = [sys.executable, "-c", PEAK_RSS, "train", "--quiet", "--run-dir", str(tmp_path / "run"),
            "--set", f"data.dir={tmp_path}", "--set", "train.num_iterations=2", "--set", "train.solver=primal",
            "--set", "train.dtype=float32", "--set", "train.streaming=false"]
    result = subprocess.run(args, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    peak, copy = int(result.stderr.rsplit("VmHWM:", 1)[1].split()[0]) << 10, m * 64 * 64 * 3 * 4
    assert peak <= 1.25 * copy + (150 << 20), f"peak {peak >> 20} MiB"
