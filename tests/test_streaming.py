"""Streaming through the real CLI on generated course-schema HDF5 files: the same model as in memory."""
import json

import h5py
import numpy as np
import pytest

from pipeline.artifacts import load_model
from pipeline.features import features, fit_scaler
from pipeline.streaming import Chunks
from tests.conftest import run_cli
from tests.test_data import images, write_split


@pytest.fixture
def data_dir(tmp_path):
    """train_catvnoncat.h5 (90 images of 8 x 8) and test_catvnoncat.h5 (20) with random labels."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "data"
    folder.mkdir()
    write_split(folder / "train_catvnoncat.h5", "train", images(90, size=8, seed=1), rng.integers(0, 2, 90))
    write_split(folder / "test_catvnoncat.h5", "test", images(20, size=8, seed=2), rng.integers(0, 2, 20))
    return folder


def train(data_dir, run_dir, *sets):
    args = ["train", "--set", f"data.dir={data_dir}", "--set", "train.num_iterations=200", "--run-dir", run_dir]
    for s in sets:
        args += ["--set", s]
    return run_cli(*args)


@pytest.mark.parametrize("scaling", ["divide255", "standardize"])
def test_streaming_run_is_the_in_memory_run(data_dir, tmp_path, scaling):
    runs = {}
    for streaming in ("false", "true"):
        run_dir = tmp_path / streaming
        result = train(data_dir, run_dir, f"train.streaming={streaming}", "train.chunk_size=16",
                       "train.solver=primal", f"features.scaling={scaling}")
        assert result.returncode == 0, result.stderr
        runs[streaming] = (load_model(run_dir), json.loads((run_dir / "metrics.json").read_text()), result.stdout)
    (memory, m_metrics, m_out), (streamed, s_metrics, s_out) = runs["false"], runs["true"]
    np.testing.assert_allclose(streamed.w, memory.w, rtol=0, atol=1e-9)
    assert streamed.b == pytest.approx(memory.b, abs=1e-9)
    assert s_metrics["train"]["confusion"] == m_metrics["train"]["confusion"]
    assert s_metrics["test"]["log_loss"] == pytest.approx(m_metrics["test"]["log_loss"], abs=1e-9)
    assert s_out.splitlines()[-2:] == m_out.splitlines()[-2:]


def test_gram_with_streaming_is_refused_and_leaves_no_run(data_dir, tmp_path):
    result = train(data_dir, tmp_path / "run", "train.streaming=true", "train.solver=gram")
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == ("error: train.solver gram needs the training set in memory, but it is streamed "
                             "(train.streaming is true); use train.solver primal or auto\n")
    assert not (tmp_path / "run").exists()


def chunked_file(tmp_path, x, rows):
    """x written to a real HDF5 file stored in chunks of `rows` examples, opened for reading."""
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("train_set_x", data=x, chunks=(rows, *x.shape[1:]))
    return h5py.File(tmp_path / "x.h5", "r")


def test_streaming_keeps_the_chunks_that_fit_the_memory_budget(tmp_path):
    x = images(30, size=4, seed=5)  # 48 bytes an image
    scaler = fit_scaler("divide255", None)
    expected = features(x, scaler)
    f = chunked_file(tmp_path, x, rows=4)
    reads = {}
    for budget, kept in ((0, []), (2 * 8 * 48, [0, 8]), (30 * 48, [0, 8, 16, 24])):
        chunks = Chunks(f["train_set_x"], scaler, chunk_size=5, budget=budget)  # 5 -> two stored chunks of 4
        reads[budget] = [cols for cols, _ in chunks]
        assert sorted(chunks.kept) == kept
        np.testing.assert_array_equal(np.concatenate([X for _, X in chunks], axis=1), expected)
    assert reads[0] == [slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 30)]
    f.close()  # within a large enough budget, the next passes read nothing from the file
    np.testing.assert_array_equal(np.concatenate([X for _, X in chunks], axis=1), expected)


def test_chunks_walk_blocks_of_about_one_mib():
    x = images(100, size=64, seed=1)  # 12288 pixels: 10 examples of float64 make 1 MiB, 21 of float32
    scaler = fit_scaler("divide255", None)
    for dtype, k in (("float64", 10), ("float32", 21)):
        blocks = list(Chunks(x, scaler, chunk_size=64, dtype=dtype))
        assert [cols.stop - cols.start for cols, _ in blocks] == [k] * (64 // k) + [64 % k] + [k] * (36 // k) + [36 % k]
        assert all(X.shape == (12288, c.stop - c.start) and X.dtype == dtype for c, X in blocks)
