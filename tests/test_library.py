"""load_run, Neuron.save, load_images and load_folder against the CLI: real runs, real image files, real
`predict --json` subprocesses."""
import html
import json
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline import Neuron, PipelineError, load_folder, load_images, load_run
from tests.conftest import run_cli, train_cli


@pytest.fixture(scope="module")
def test_images(course_dir, tmp_path_factory):
    """Ten of the course's test images written as PNG and JPEG files."""
    folder = tmp_path_factory.mktemp("images")
    with h5py.File(course_dir / "test_catvnoncat.h5") as f:
        x = f["test_set_x"][:10]
    paths = []
    for i, pixels in enumerate(x):
        paths.append(folder / f"test{i}.{'png' if i % 2 else 'jpg'}")
        Image.fromarray(pixels).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def runs(course_dir, tmp_path_factory):
    """The lesson's run, and a short one with standardize scaling and a threshold chosen on validation."""
    folder = tmp_path_factory.mktemp("runs")
    train_cli(course_dir, folder / "lesson")
    train_cli(course_dir, folder / "standardize", "features.scaling=standardize", "train.num_iterations=200",
              "data.val_fraction=0.2", "evaluate.threshold=auto", "train.learning_rate=auto")
    return folder


def predict_json(model, paths):
    result = run_cli("predict", "--model", model, "--json", *paths, check=0)
    return json.loads(result.stdout)


@pytest.mark.parametrize("run", ["lesson", "standardize"])
def test_load_run_gives_predicts_probabilities_on_image_files(runs, test_images, run):
    neuron = load_run(runs / run)
    expected = predict_json(runs / run, test_images)
    x = load_images(test_images)  # (10, 64, 64, 3) uint8: raw pixels, the run's scaling is inside
    p = neuron.predict_proba(x.reshape(len(x), -1))[:, 1]
    np.testing.assert_allclose(p, [r["probability"] for r in expected], rtol=0, atol=1e-6)
    assert list(neuron.predict(x.reshape(len(x), -1))) == [r["label"] for r in expected]
    assert neuron.scaling == ("divide255" if run == "lesson" else "standardize")
    threshold = json.loads((runs / run / "run.json").read_text())["training"]["threshold"]
    assert neuron.threshold_ == threshold and (run == "lesson" or threshold != 0.5)


def test_load_run_has_the_runs_settings_costs_and_report(runs):
    neuron = load_run(runs / "lesson")
    assert neuron.learning_rate == 0.005 and neuron.num_iterations == 2000 and neuron.n_iter_ == 2000
    assert len(neuron.costs_) == 20 and round(neuron.costs_[-1], 6) == 0.140872
    assert list(neuron.classes_) == ["non-cat", "cat"] and neuron.n_features_in_ == 12288
    report = neuron.report_html()
    page = (runs / "lesson" / "report.html").read_text(encoding="utf-8")
    assert str(report) == page
    shown = report._repr_html_()  # what Jupyter displays: the page in an iframe, its styles kept inside
    assert shown.startswith('<iframe srcdoc="') and html.unescape(shown.split('"')[1]) == page
    # the model file alone, copied out of its run: the same neuron, without the run's extras
    shutil.copy(runs / "lesson" / "model.npz", runs / "alone.npz")
    alone = load_run(runs / "alone.npz")
    np.testing.assert_array_equal(alone.coef_, neuron.coef_)
    assert alone.n_iter_ is None and alone.costs_ == []
    with pytest.raises(ValueError, match="report_html: this Neuron has no run report; load_run a run folder"):
        alone.report_html()
    assert load_run(runs / "lesson" / "model.npz").report_html().path == runs / "lesson" / "report.html"


def test_load_run_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(PipelineError, match="no such model file"):
        load_run(tmp_path)
    (tmp_path / "model.npz").write_text("hello")
    with pytest.raises(PipelineError, match=r"model.npz: not a model file \(.npz\)"):
        load_run(tmp_path / "model.npz")


def test_saved_neuron_is_a_model_predict_takes(course_dir, test_images, tmp_path):
    with h5py.File(course_dir / "train_catvnoncat.h5") as f:
        x, y = f["train_set_x"][:], f["train_set_y"][:]
    labels = np.where(y == 1, "cat", "non-cat")  # sorted: classes_ = [cat, non-cat], non-cat the positive one
    neuron = Neuron(solver="gram", num_iterations=200, scaling="standardize").fit(x.reshape(len(x), -1), labels)
    assert neuron.save(tmp_path / "model.npz") == tmp_path / "model.npz"
    expected = predict_json(tmp_path / "model.npz", test_images)
    pixels = load_images(test_images).reshape(len(test_images), -1)
    np.testing.assert_allclose(neuron.predict_proba(pixels)[:, 1], [r["probability"] for r in expected], atol=1e-6)
    assert list(neuron.predict(pixels)) == [r["label"] for r in expected]
    again = load_run(tmp_path / "model.npz")
    np.testing.assert_array_equal(again.predict_proba(pixels), neuron.predict_proba(pixels))


def test_save_refuses_what_predict_could_not_repeat(tmp_path):
    X, y = np.arange(24.0).reshape(2, 12), [0, 1]
    with pytest.raises(ValueError, match="Neuron.save: scaling=None means X was scaled outside the estimator"):
        Neuron(num_iterations=5).fit(X, y).save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"Neuron.save: 10 features are not the pixels of a square RGB image"):
        Neuron(num_iterations=5, scaling="divide255").fit(X[:, :10], y).save(tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()
    Neuron(num_iterations=5, scaling="divide255").fit(X, y).save(tmp_path / "model.npz")  # 12 = 2 * 2 * 3
    assert load_run(tmp_path / "model.npz")._image[0] == (2, 2, 3)


def write(path, colour, size=(30, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_load_images_is_predicts_loader(tmp_path):
    write(tmp_path / "a.png", (255, 0, 0))
    write(tmp_path / "b.jpg", (0, 0, 255), (100, 40))
    x = load_images([tmp_path / "a.png", str(tmp_path / "b.jpg")], size=(8, 16), fit="pad")
    assert x.shape == (2, 8, 16, 3) and x.dtype == np.uint8
    assert (x[0, 4, 8] == (255, 0, 0)).all() and (x[0, 0, 0] == (255, 255, 255)).all()  # padded on white
    assert load_images(tmp_path / "a.png").shape == (1, 64, 64, 3)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(PipelineError, match=r"notes.png: not an image \(a text file\)"):
        load_images([tmp_path / "a.png", tmp_path / "notes.png"])
    with pytest.raises(PipelineError, match=r"missing.png: no such file"):
        load_images([tmp_path / "missing.png"])
    with pytest.raises(PipelineError, match=r": is a folder, not an image file"):
        load_images([tmp_path])
    with pytest.raises(PipelineError, match="fit must be one of squash, crop, pad, got 'stretch'"):
        load_images([tmp_path / "a.png"], fit="stretch")
    with pytest.raises(PipelineError, match=r"size must be a whole number of pixels from 1 to 1024, or \(h, w\), got 0"):
        load_images([tmp_path / "a.png"], size=0)


def test_load_folder_walks_class_folders_as_prepare_does(tmp_path):
    write(tmp_path / "cat" / "deep" / "c1.png", (200, 100, 0))
    write(tmp_path / "cat" / "c2.jpg", (210, 90, 0))
    write(tmp_path / "dog" / "d1.png", (0, 0, 0))
    (tmp_path / "dog" / ".DS_Store").write_text("")
    (tmp_path / "dog" / "readme.txt").write_text("hi")
    x, y, paths = load_folder(tmp_path, positive="cat", negative="dog", size=16)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["cat/c2.jpg", "cat/deep/c1.png", "dog/d1.png"]
    assert list(y) == [1, 1, 0] and x.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(x, load_images(paths, size=16))
    with pytest.raises(PipelineError, match="non-cat: class folder missing"):
        load_folder(tmp_path)
    with pytest.raises(PipelineError, match=r"load_folder: data.positive must be plain folder names"):
        load_folder(tmp_path, positive="../cat", negative="dog")
