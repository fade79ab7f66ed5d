"""The course HDF5 schema is read exactly and anything else is refused with the file and the problem."""
import h5py
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.data import load_course, load_split
from pipeline.features import fit_scaler, flatten


def write_split(path, split, x, y, classes=(b"non-cat", b"cat"), skip=()):
    with h5py.File(path, "w") as f:
        for key, value in ((f"{split}_set_x", x), (f"{split}_set_y", y), ("list_classes", np.array(classes))):
            if key not in skip:
                f.create_dataset(key, data=value)
    return path


def images(m, size=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(m, size, size, 3), dtype=np.uint8)


def test_reads_x_y_and_classes(tmp_path):
    x = images(5)
    ds = load_split(write_split(tmp_path / "t.h5", "train", x, np.array([0, 1, 1, 0, 1])), "train")
    np.testing.assert_array_equal(ds.x, x)
    assert ds.y.shape == (1, 5) and ds.y.tolist() == [[0, 1, 1, 0, 1]]
    assert ds.classes == ("non-cat", "cat")


@pytest.mark.parametrize("x, y, skip, message", [
    (images(3), np.array([0, 1, 0]), ("train_set_y",), r"t.h5: missing dataset 'train_set_y'"),
    (images(3), np.array([0, 1, 0]), ("list_classes",), r"t.h5: missing dataset 'list_classes'"),
    (images(3).astype(np.float32), np.array([0, 1, 0]), (), r"train_set_x must be uint8 of shape \(m, h, w, 3\), got float32"),
    (images(3)[..., :1], np.array([0, 1, 0]), (), r"got uint8 of shape \(3, 4, 4, 1\)"),
    (images(3), np.array([0, 1]), (), r"train_set_y must have shape \(3,\) to match train_set_x, got \(2,\)"),
    (images(3), np.array([0, 2, 1]), (), r"train_set_y must hold only the labels 0 and 1"),
    (images(3), np.array([0.0, 1.0, 1.0]), (), r"train_set_y must hold only the labels 0 and 1"),
    (images(0), np.zeros(0, dtype=np.int64), (), r"train_set_x holds no examples"),
])
def test_bad_schema_is_refused(tmp_path, x, y, skip, message):
    path = write_split(tmp_path / "t.h5", "train", x, y, skip=skip)
    with pytest.raises(PipelineError, match=message):
        load_split(path, "train")


def test_not_hdf5_and_missing_file(tmp_path):
    bad = tmp_path / "t.h5"
    bad.write_text("hello")
    with pytest.raises(PipelineError, match=r"t.h5: not an HDF5 file"):
        load_split(bad, "train")
    with pytest.raises(PipelineError, match=r"none.h5: no such file"):
        load_split(tmp_path / "none.h5", "train")


def test_training_set_needs_both_classes(tmp_path):
    write_split(tmp_path / "train_catvnoncat.h5", "train", images(3), np.array([1, 1, 1]))
    write_split(tmp_path / "test_catvnoncat.h5", "test", images(2), np.array([0, 1]))
    with pytest.raises(PipelineError, match=r"train_catvnoncat.h5: train_set_y holds only the label 1"):
        load_course(tmp_path)


def test_test_images_must_match_training_size(tmp_path):
    write_split(tmp_path / "train_catvnoncat.h5", "train", images(3), np.array([0, 1, 1]))
    write_split(tmp_path / "test_catvnoncat.h5", "test", images(2, size=5), np.array([0, 1]))
    with pytest.raises(PipelineError, match=r"test_catvnoncat.h5: images are \(5, 5, 3\)"):
        load_course(tmp_path)


def test_flatten_is_the_lessons_reshape():
    x = images(3, size=2)
    X = flatten(x)
    assert X.shape == (12, 3)
    np.testing.assert_array_equal(X[:, 1], x[1].reshape(-1))  # one column per example, row-major pixels


def test_standardize_is_fitted_on_the_given_set_only():
    X = flatten(images(20, seed=1))
    scaler = fit_scaler("standardize", X)
    Z = scaler.transform(X)
    np.testing.assert_allclose(Z.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=1), 1, atol=1e-12)
    other = flatten(images(5, seed=2))
    np.testing.assert_allclose(scaler.transform(other), (other - X.mean(1, keepdims=True)) / X.std(1, keepdims=True))


def test_constant_pixel_standardizes_to_zero_not_nan():
    x = images(4)
    x[:, 0, 0, 0] = 7
    Z = fit_scaler("standardize", flatten(x)).transform(flatten(x))
    assert np.isfinite(Z).all() and not Z[0].any()

