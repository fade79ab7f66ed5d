"""`python -m pipeline predict` through a real subprocess: results, output formats, exit codes, refusals."""
import csv
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from pipeline.artifacts import Model, load_model, save_model
from pipeline.data import load_split
from pipeline.features import Scaler
from pipeline.model import sigmoid
from tests.conftest import run_cli
from tests.test_images import BAD_FILES, quadrants, write


def synthetic_model(path, shape=(64, 64, 3), fit="squash", threshold=0.5):
    """A model file with small random weights, so that probabilities vary from image to image."""
    n_x = int(np.prod(shape))
    w = np.random.default_rng(0).normal(0, 0.02, (n_x, 1))  # (n_x, 1)
    empty = np.zeros((0, 1))
    save_model(path, Model(w=w, b=-0.1, image_shape=shape, scaler=Scaler("divide255", empty, empty),
                           classes=("non-cat", "cat"), threshold=threshold, fit=fit))
    return path


@pytest.fixture
def model(tmp_path):
    return synthetic_model(tmp_path / "model.npz")


def camera_folder(root):
    """JPEGs of several sizes (one stored sideways), a PNG with transparency, a stray .txt and a hidden file."""
    rng = np.random.default_rng(2)
    (root / "2024" / "trip").mkdir(parents=True)
    for k, (w, h) in enumerate([(1600, 1200), (640, 480), (300, 500)]):
        pixels = rng.integers(0, 256, (h // 10, w // 10, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((w, h)).save(root / "2024" / f"IMG_{k}.JPG", quality=85)
    exif = Image.Exif()
    exif[0x0112] = 6
    quadrants(800, 600).save(root / "2024" / "trip" / "sideways.jpg", exif=exif)
    sticker = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
    sticker.paste((200, 30, 30, 255), (30, 20, 90, 60))
    sticker.save(root / "sticker.png")
    (root / "readme.txt").write_text("holiday pictures\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def test_a_camera_folder_gives_a_line_per_image_and_a_note_for_the_odd_file(tmp_path, model):
    folder = camera_folder(tmp_path / "camera")
    result = run_cli("predict", "--model", model, folder, check=0)
    images = ["2024/IMG_0.JPG", "2024/IMG_1.JPG", "2024/IMG_2.JPG", "2024/trip/sideways.jpg", "sticker.png"]
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(folder / name) for name in images]
    assert all(re.fullmatch(r".*: (cat|non-cat) \(p=[01]\.\d{3}\)", line) for line in lines)
    assert result.stderr == f"note: {folder / 'readme.txt'}: skipped, not an image file name\n"


def test_json_and_csv_hold_the_same_results_as_the_human_lines(tmp_path, model):
    folder = camera_folder(tmp_path / "camera")
    human = run_cli("predict", "--model", model, folder, check=0).stdout.splitlines()
    records = json.loads(run_cli("predict", "--model", model, folder, "--json", check=0).stdout)
    assert [f"{r['path']}: {r['label']} (p={r['probability']:.3f})" for r in records] == human
    rows = list(csv.DictReader(io.StringIO(run_cli("predict", "--model", model, folder, "--csv", check=0).stdout)))
    assert [(r["path"], r["label"], float(r["probability"])) for r in rows] == \
           [(r["path"], r["label"], r["probability"]) for r in records]
    assert all(r["label"] == ("cat" if r["probability"] > 0.5 else "non-cat") for r in records)
    assert len({round(r["probability"], 6) for r in records}) == len(records)  # the images really differ


def test_the_probability_is_the_neurons_on_the_models_own_size(tmp_path):
    """A 32x32 model: the size comes from the model file; the oracle is the lesson's formula on the pixels."""
    model = synthetic_model(tmp_path / "small.npz", shape=(32, 32, 3))
    pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "exact.png")
    quadrants(90, 50).save(tmp_path / "resized.png")
    result = run_cli("predict", "--model", model, tmp_path / "exact.png", tmp_path / "resized.png", "--json",
                     "--save-input", tmp_path / "seen", check=0)
    records = json.loads(result.stdout)
    m = load_model(model)
    X = pixels.reshape(-1, 1) / 255  # (n_x, 1), the lesson's flatten of one image
    assert records[0]["probability"] == pytest.approx(float(sigmoid(m.w.T @ X + m.b)[0, 0]), abs=1e-12)
    seen = sorted((tmp_path / "seen").iterdir())
    assert [p.name for p in seen] == ["00000_exact.png", "00001_resized.png"]
    for path, record in zip(seen, records):
        with Image.open(path) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
            X = np.asarray(image).reshape(-1, 1) / 255  # (n_x, 1)
        assert record["probability"] == pytest.approx(float(sigmoid(m.w.T @ X + m.b)[0, 0]), abs=1e-12)


def test_the_models_fit_is_the_default_and_can_be_overridden(tmp_path):
    model = synthetic_model(tmp_path / "pad.npz", fit="pad")
    quadrants(200, 80).save(tmp_path / "wide.png")

    def probability(*options):
        out = run_cli("predict", "--model", model, tmp_path / "wide.png", "--json", *options, check=0).stdout
        return json.loads(out)[0]["probability"]

    default, pad, squash = probability(), probability("--fit", "pad"), probability("--fit", "squash")
    assert default == pad and abs(default - squash) > 1e-3
    assert probability("--resample", "nearest") != pad


def test_save_input_must_be_a_folder(tmp_path, model):
    quadrants().save(tmp_path / "cat.png")
    result = run_cli("predict", "--model", model, tmp_path / "cat.png", "--save-input", tmp_path / "cat.png")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: --save-input {tmp_path / 'cat.png'}: exists and is not a folder\n"


def test_threshold_overrides_the_models(tmp_path, model):
    folder = camera_folder(tmp_path / "camera")
    records = json.loads(run_cli("predict", "--model", model, folder, "--json", "--threshold", "0.9", check=0).stdout)
    assert [r["label"] for r in records] == ["cat" if r["probability"] > 0.9 else "non-cat" for r in records]
    result = run_cli("predict", "--model", model, folder, "--threshold", "1.5")
    assert result.returncode == 1 and result.stderr == "error: --threshold 1.5: must be between 0 and 1 (exclusive)\n"


CLI_BAD = [(name, make, "album.jpg: no image files in this folder" if name == "album.jpg" else message)
           for name, make, message in BAD_FILES] + [("empty-folder", lambda p: p.mkdir() or p,
                                                     "empty-folder: no image files in this folder")]


@pytest.mark.parametrize("name, make, message", CLI_BAD, ids=[b[0] for b in CLI_BAD])
def test_each_bad_input_is_one_line_and_exit_1(tmp_path, model, name, make, message):
    path = make(tmp_path / name)
    result = run_cli("predict", "--model", model, path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {tmp_path / message}") and result.stderr.count("\n") == 1


def test_in_a_batch_bad_files_are_named_and_good_ones_still_predicted(tmp_path, model):
    quadrants().save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_text("not a picture")
    result = run_cli("predict", "--model", model, tmp_path / "bad.jpg", tmp_path / "good.png", tmp_path / "gone.png",
                     "--json")
    assert result.returncode == 3
    assert [r["path"] for r in json.loads(result.stdout)] == [str(tmp_path / "good.png")]
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'bad.jpg'}: not an image (a text file)",
                                          f"error: {tmp_path / 'gone.png'}: no such file",
                                          "1 predicted, 2 failed (see above)"]


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "nothing.npz", "nothing.npz: no such model file"),
    (lambda d: d, "model.npz: no such model file"),  # a folder without a model
    (lambda d: write(d / "m.npz", b"hello"), "m.npz: not a model file (.npz)"),
    (lambda d: npz(d / "m.npz", w=np.zeros((3, 1))), "m.npz: not a model of this pipeline: missing b, image_shape"),
    (lambda d: npz(d / "m.npz", **dict(np.load(synthetic_model(d / "ok.npz")), w=np.zeros((5, 1)))),
     "m.npz: w must have shape (12288, 1) for images of (64, 64, 3), got (5, 1)"),
    (lambda d: npz(d / "m.npz", **dict(np.load(synthetic_model(d / "ok.npz")), w=np.full((12288, 1), "x"))),
     "m.npz: w must hold numbers, got <U1"),
    (lambda d: npz(d / "m.npz", **dict(np.load(synthetic_model(d / "ok.npz")), b=np.zeros(3))),
     "m.npz: b must be a single number, got shape (3,)"),
    (lambda d: npz(d / "m.npz", **dict(np.load(synthetic_model(d / "ok.npz")), fit=np.str_("stretch"))),
     "m.npz: unknown fit 'stretch' (expected one of squash, crop, pad)"),
    (lambda d: npz(d / "m.npz", **dict(np.load(synthetic_model(d / "ok.npz")), w=np.array([{}], dtype=object))),
     "m.npz: refused: it holds pickled Python objects, which are never loaded (allow_pickle=False)"),
])
def test_a_bad_model_file_is_refused(tmp_path, make, message):
    quadrants().save(tmp_path / "cat.png")
    (tmp_path / "d").mkdir()
    result = run_cli("predict", "--model", make(tmp_path / "d"), tmp_path / "cat.png")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {tmp_path / 'd' / message}") and result.stderr.count("\n") == 1


def test_without_a_model_the_latest_run_is_used(tmp_path):
    quadrants().save(tmp_path / "cat.png")
    result = run_cli("predict", "cat.png", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr == "error: runs: no run with a model.npz found; train one first (the train command, or make train)\n"
    synthetic_model(tmp_path / "runs" / "old" / "model.npz")
    # a folder without run.json (written last by train) is an unfinished run, never picked
    assert "no run with a model.npz found" in run_cli("predict", "cat.png", cwd=tmp_path).stderr
    (tmp_path / "runs" / "old" / "run.json").write_text('{"started": "2026-01-02T03:04:00+00:00", "duration_s": 90}')
    result = run_cli("predict", "cat.png", cwd=tmp_path, check=0)
    # the run taken and when it finished, on stdout beside the results; --json and --csv keep stdout pure
    named = "model: runs/old (the latest run, trained 2026-01-02 03:05 UTC)\n"
    assert result.stdout.startswith(named + "cat.png: ") and result.stderr == ""
    result = run_cli("predict", "cat.png", "--json", cwd=tmp_path, check=0)
    assert json.loads(result.stdout)[0]["path"] == "cat.png" and result.stderr == named


def test_an_unknown_fit_in_the_config_is_refused():
    result = run_cli("train", "--set", "data.fit=stretch")
    assert result.returncode == 1
    assert "data.fit must be one of squash, crop, pad, got 'stretch'" in result.stderr


@pytest.fixture(scope="module")
def lesson_run(course_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "lesson"
    # any trained run will do: 300 of the lesson's 2000 steps keep the test quick
    run_cli("train", "--set", f"data.dir={course_dir}", "--set", "train.num_iterations=300", "--run-dir", run_dir,
            check=0)
    return run_dir


@pytest.mark.parametrize("fit", ["squash", "crop", "pad"])
def test_round_trip_pngs_of_test_images_give_the_runs_probabilities(lesson_run, course_dir, tmp_path, fit):
    test = load_split(course_dir / "test_catvnoncat.h5", "test")
    model = load_model(lesson_run)
    assert (model.fit, model.resample) == ("squash", "bilinear")  # the config's defaults, recorded
    probs = model.predict_proba(test.x)[0]  # the run's evaluation of every test example
    picked = [0, 5, 13, 29, 44, 49]
    for i in picked:
        Image.fromarray(test.x[i]).save(tmp_path / f"test_{i:02d}.png")
    result = run_cli("predict", "--model", lesson_run, tmp_path, "--json", "--fit", fit, check=0)
    records = json.loads(result.stdout)
    assert [r["path"] for r in records] == [str(tmp_path / f"test_{i:02d}.png") for i in picked]
    np.testing.assert_allclose([r["probability"] for r in records], probs[picked], rtol=0, atol=1e-9)
    assert [r["label"] for r in records] == [model.classes[int(probs[i] > 0.5)] for i in picked]
    assert len(set(np.round(probs[picked], 3))) == len(picked)  # distinct probabilities: the images are told apart


def test_training_records_the_configured_fit_and_resample(course_dir, tmp_path):
    run_cli("train", "--set", f"data.dir={course_dir}", "--set", "data.fit=crop", "--set", "data.resample=lanczos",
            "--set", "train.num_iterations=5", "--run-dir", tmp_path / "run", check=0)
    model = load_model(tmp_path / "run")
    assert (model.fit, model.resample) == ("crop", "lanczos")
