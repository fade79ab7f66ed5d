"""End to end on the real course data, through the CLI in a subprocess: the lesson's numbers, exactly."""
import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from pipeline.artifacts import load_model
from pipeline.config import Config, load_config
from tests.conftest import run_cli, train_cli as train

PUBLISHED_COSTS = [0.693147, 0.584508, 0.466949, 0.376007, 0.331463, 0.303273, 0.279880, 0.260042, 0.242941,
                   0.228004, 0.214820, 0.203078, 0.192544, 0.183033, 0.174399, 0.166521, 0.159305, 0.152667,
                   0.146542, 0.140872]


@pytest.fixture(scope="module")
def lesson_run(course_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "lesson"
    return run_dir, train(course_dir, run_dir)


def test_default_config_prints_the_lessons_costs_and_accuracies(lesson_run):
    _, result = lesson_run
    lines = result.stdout.splitlines()
    costs = [re.fullmatch(r"Cost after iteration (\d+): (0\.\d{6})", line) for line in lines[:-2]]
    assert [int(c.group(1)) for c in costs] == list(range(0, 2000, 100))
    np.testing.assert_allclose([float(c.group(2)) for c in costs], PUBLISHED_COSTS, atol=1e-6)
    assert lines[-2:] == ["train accuracy: 99.04306220095694 %", "test accuracy: 70.0 %"]


def test_recorded_costs_match_the_published_ones_to_1e_6(lesson_run):
    run_dir, _ = lesson_run
    with open(run_dir / "costs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == list(range(0, 2000, 100))
    np.testing.assert_allclose([float(r["cost"]) for r in rows], PUBLISHED_COSTS, atol=1e-6)


def test_run_folder_is_complete_and_describes_itself(lesson_run, course_dir):
    run_dir, _ = lesson_run
    config = load_config(run_dir / "config.yaml")
    assert config.train == Config().train and config.data.dir == str(course_dir)
    model = load_model(run_dir / "model.npz")
    assert model.w.shape == (12288, 1) and model.image_shape == (64, 64, 3)
    assert model.classes == ("non-cat", "cat") and model.scaler.kind == "divide255" and model.threshold == 0.5
    with np.load(run_dir / "model.npz", allow_pickle=False) as npz:
        assert npz["w"].dtype == np.float64
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["accuracy"] == pytest.approx(207 / 209) and metrics["train"]["count"] == 209
    assert metrics["test"]["accuracy"] == pytest.approx(0.70) and metrics["test"]["count"] == 50
    (tn, fp), (fn, tp) = metrics["test"]["confusion"]
    assert tn + fp + fn + tp == 50 and fp + fn == 15
    assert metrics["test"]["precision"] == pytest.approx(tp / (tp + fp))
    assert metrics["test"]["recall"] == pytest.approx(tp / (tp + fn))
    assert 0 < metrics["train"]["log_loss"] < metrics["test"]["log_loss"]


def test_misclassified_gallery_lists_every_wrong_test_image(lesson_run, course_dir):
    run_dir, _ = lesson_run
    from pipeline.data import load_split

    test = load_split(course_dir / "test_catvnoncat.h5", "test")
    model = load_model(run_dir)
    probs = model.predict_proba(test.x)[0]
    with open(run_dir / "misclassified" / "index.csv") as f:
        rows = list(csv.DictReader(f))
    wrong = [i for i in range(50) if (probs[i] > 0.5) != (test.y[0, i] == 1)]
    assert [int(r["index"]) for r in rows] == wrong and len(wrong) == 15
    for r in rows:
        i = int(r["index"])
        assert float(r["probability"]) == pytest.approx(probs[i], abs=1e-6)
        assert r["true_label"] == model.classes[test.y[0, i]] and r["predicted_label"] != r["true_label"]
        with Image.open(run_dir / "misclassified" / r["file"]) as image:
            assert image.size == (256, 256)
            # enlarged with nearest neighbour: every 4th pixel is the original
            np.testing.assert_array_equal(np.asarray(image)[::4, ::4], test.x[i])
    with Image.open(run_dir / "misclassified" / "grid.png") as grid:
        assert grid.size[0] == 8 * 256


def test_evaluate_rewrites_the_same_metrics(lesson_run, course_dir):
    run_dir, _ = lesson_run
    before = (run_dir / "metrics.json").read_text()
    (run_dir / "metrics.json").unlink()
    (run_dir / "misclassified" / "grid.png").unlink()
    result = run_cli("evaluate", "--run", run_dir, check=0)
    assert (run_dir / "metrics.json").read_text() == before
    assert (run_dir / "misclassified" / "grid.png").is_file()
    assert result.stdout.splitlines() == ["train accuracy: 99.04306220095694 %", "test accuracy: 70.0 %"]


def test_an_existing_run_folder_is_never_overwritten(lesson_run, course_dir):
    run_dir, _ = lesson_run
    before = (run_dir / "model.npz").read_bytes()
    result = run_cli("train", "--set", f"data.dir={course_dir}", "--run-dir", run_dir)
    assert result.returncode == 1 and "already exists and is not an empty folder" in result.stderr
    assert (run_dir / "model.npz").read_bytes() == before


@pytest.mark.parametrize("solver", ["primal", "gram"])
def test_each_solver_reproduces_the_lesson(course_dir, tmp_path, solver):
    """The default run (auto) is gram on the course data; each solver named explicitly gives the same numbers."""
    result = train(course_dir, tmp_path / "run", f"train.solver={solver}")
    assert result.stdout.splitlines()[-2:] == ["train accuracy: 99.04306220095694 %", "test accuracy: 70.0 %"]
    with open(tmp_path / "run" / "costs.csv") as f:
        costs = [float(r["cost"]) for r in csv.DictReader(f)]
    np.testing.assert_allclose(costs, PUBLISHED_COSTS, atol=1e-6)


def test_streaming_from_the_course_file_gives_the_in_memory_numbers(course_dir, tmp_path, lesson_run):
    """Read from HDF5 in chunks of 100 (of 209) examples; 200 iterations keep the test short."""
    train(course_dir, tmp_path / "run", "train.streaming=true", "train.chunk_size=100", "train.num_iterations=200")
    with open(tmp_path / "run" / "costs.csv") as f:
        costs = [float(r["cost"]) for r in csv.DictReader(f)]
    with open(lesson_run[0] / "costs.csv") as f:
        in_memory = [float(r["cost"]) for r in csv.DictReader(f)]
    np.testing.assert_allclose(costs, in_memory[:2], rtol=0, atol=1e-9)


@pytest.mark.parametrize("rate, train_acc, test_acc", [
    ("0.01", "99.52153110047847", "68.0"),
    ("0.001", "88.99521531100478", "64.0"),
    ("0.0001", "68.42105263157895", "36.0"),
])
def test_the_lessons_learning_rate_comparison(course_dir, tmp_path, rate, train_acc, test_acc):
    result = train(course_dir, tmp_path / "run", f"train.learning_rate={rate}", "train.num_iterations=1500")
    assert result.stdout.splitlines()[-2:] == [f"train accuracy: {train_acc} %", f"test accuracy: {test_acc} %"]


def test_standardize_trains_and_stores_its_statistics(course_dir, tmp_path):
    train(course_dir, tmp_path / "run", "features.scaling=standardize", "train.num_iterations=50")
    model = load_model(tmp_path / "run")
    assert model.scaler.mean.shape == (12288, 1) and model.scaler.std.shape == (12288, 1)
    from pipeline.data import load_split
    from pipeline.features import flatten

    x = load_split(course_dir / "train_catvnoncat.h5", "train").x
    np.testing.assert_allclose(model.scaler.mean, flatten(x).mean(axis=1, keepdims=True))


def test_the_lessons_run_has_a_report_saying_which_cats_it_missed(lesson_run):
    run_dir, _ = lesson_run
    (tn, fp), (fn, tp) = json.loads((run_dir / "metrics.json").read_text())["test"]["confusion"]
    text = (run_dir / "report.html").read_text()
    assert f"test accuracy 70.00 %: {fn} cat images missed and {fp} non-cat images taken for cat, out of 50." in text
    assert "Misclassified test images (15 of 50)" in text and text.count("true cat; p = 0.") >= fn
    assert "threshold 0.500 → non-cat" in text  # the lesson's threshold, in every caption
    with Image.open(run_dir / "weights.png") as image:
        assert image.size == (256, 256)  # the model's 64 x 64 images, enlarged 4 times
