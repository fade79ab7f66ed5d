"""Explanations: the contributions add up to the logit, `predict --explain` through the CLI, safe names, the report."""
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from pipeline.artifacts import Model, load_model
from pipeline.explain import contributions, explain
from pipeline.features import Scaler
from tests.conftest import run_cli, train_cli
from tests.test_report import Page, decode, small_data, small_run  # noqa: F401


@pytest.fixture(scope="session")
def course_run(course_dir, tmp_path_factory):
    """A short run on the real course data (100 iterations: a model that is sure of some images, not all)."""
    run_dir = tmp_path_factory.mktemp("explain") / "run"
    train_cli(course_dir, run_dir, "train.num_iterations=100")
    return run_dir


def random_model(scaling, shape=(12, 10, 3), seed=0):
    rng = np.random.default_rng(seed)
    n_x = int(np.prod(shape))
    if scaling == "standardize":
        scaler = Scaler(scaling, rng.uniform(50, 200, (n_x, 1)), rng.uniform(10, 80, (n_x, 1)))
    else:
        scaler = Scaler(scaling, np.zeros((0, 1)), np.zeros((0, 1)))
    return Model(w=rng.normal(0, 0.1, (n_x, 1)), b=0.37, image_shape=shape, scaler=scaler,
                 classes=("non-cat", "cat"), threshold=0.5)


@pytest.mark.parametrize("scaling", ["divide255", "standardize"])
def test_contributions_are_w_times_the_scaled_pixel_and_add_up_to_the_logit(scaling):
    model = random_model(scaling)
    pixels = np.random.default_rng(1).integers(0, 256, model.image_shape, dtype=np.uint8)
    c, z = contributions(model, pixels)
    # the oracle, written out per channel: w_j (p_j - mean_j) / std_j, or w_j p_j / 255
    w = model.w.reshape(model.image_shape)  # (n_x, 1) -> (h, w, 3)
    if scaling == "standardize":
        x = (pixels - model.scaler.mean.reshape(model.image_shape)) / model.scaler.std.reshape(model.image_shape)
    else:
        x = pixels / 255
    assert c.shape == model.image_shape[:2]
    np.testing.assert_allclose(c, (w * x).sum(axis=2), rtol=1e-12, atol=1e-15)
    record, _ = explain(model, pixels, 0.5, "p.png")
    assert record["z"] == z == pytest.approx(model.b + c.sum(), abs=1e-12)
    assert record["bias"] + record["contributions_sum"] == pytest.approx(record["z"], abs=1e-12)
    p = record["probability"]
    assert np.log(p / (1 - p)) == pytest.approx(z, abs=1e-9)
    cells = record["top_cells"]  # 12x10 image in 8x8 cells: 2x2 cells, the last ones partial
    assert {(k["top"], k["left"], k["height"], k["width"]) for k in cells} == {(0, 0, 8, 8), (0, 8, 8, 2),
                                                                             (8, 0, 4, 8), (8, 8, 4, 2)}
    for k in cells:
        assert k["contribution"] == pytest.approx(c[k["top"]:k["top"] + k["height"], k["left"]:k["left"] + k["width"]].sum())
        assert k["towards"] == ("cat" if k["contribution"] > 0 else "non-cat")
    assert [abs(k["contribution"]) for k in cells] == sorted((abs(k["contribution"]) for k in cells), reverse=True)


def test_predict_explain_writes_a_picture_and_a_json_per_input_that_add_up(course_run, course_dir, tmp_path):
    from pipeline.data import load_split

    test = load_split(course_dir / "test_catvnoncat.h5", "test")
    inputs = tmp_path / "in"
    inputs.mkdir()
    hostile = ["cat one.png", "a..b;$(rm -rf x)\n.png", "é" * 120 + ".png"]  # spaces, shell, newline, long
    for k, name in enumerate(hostile):
        Image.fromarray(test.x[k]).save(inputs / name)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    result = run_cli("predict", "--model", course_run, inputs, "--json", "--explain", out)
    assert result.returncode == 3 and "broken.png: truncated or corrupt image" in result.stderr
    printed = json.loads(result.stdout)
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 6 and all(re.fullmatch(r"\d{5}_[\w.+-]{1,60}\.(png|json)", n) for n in written)
    model = load_model(course_run)
    for record in printed:
        stem = next(n[:-5] for n in written if n.endswith(".json")
                    and json.loads((out / n).read_text())["path"] == record["path"])
        explained = json.loads((out / f"{stem}.json").read_text())
        assert explained["label"] == record["label"]
        assert explained["probability"] == record["probability"]  # the same bits, in a folder too
        assert explained["bias"] == model.b
        assert explained["bias"] + explained["contributions_sum"] == pytest.approx(explained["z"], abs=1e-12)
        p = explained["probability"]
        assert np.log(p / (1 - p)) == pytest.approx(explained["z"], abs=1e-9)
        assert explained["picture"] == f"{stem}.png"
        k = hostile.index(record["path"].rsplit("/", 1)[1])
        c, _ = contributions(model, test.x[k])  # the oracle of the test above, on the real image
        with Image.open(out / f"{stem}.png") as image:
            figure = np.asarray(image.convert("RGB")).astype(int)
        # the middle panel: 4x enlarged, 16 px gaps and 64 px of titles; red where c > 0, blue where c < 0
        panel = figure[64:64 + 256, 16 + 256 + 16:16 + 2 * 256 + 16][2::4, 2::4]  # (64, 64, 3), one per pixel
        strong = np.abs(c) > 0.3 * explained["scale"]
        assert np.array_equal((panel[..., 0] > panel[..., 2])[strong], (c > 0)[strong])
        assert strong.sum() > 100


def test_explain_must_be_a_folder(course_run, tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    result = run_cli("predict", "--model", course_run, tmp_path / "a.png", "--explain", tmp_path / "a.png")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: --explain {tmp_path / 'a.png'}: exists and is not a folder\n"


def test_the_report_explains_its_most_confident_right_and_wrong_test_images(small_run, small_data):  # noqa: F811
    from pipeline.data import load_split

    page = Page((small_run / "report.html").read_text(encoding="utf-8"))
    captions = [i["alt"] for i in page.images if i["alt"].startswith("most confident")]
    model = load_model(small_run)
    test = load_split(small_data / "test_catvnoncat.h5", "test")
    p = model.predict_proba(test.x)[0]  # (1, m) -> (m,)
    pred = (p > model.threshold).astype(int)
    confidence = np.where(pred == 1, p, 1 - p)
    right, wrong = pred == test.y[0], pred != test.y[0]
    assert wrong.any() and right.any()  # the small data set is noisy enough for both
    best = [int(np.flatnonzero(s)[np.argmax(confidence[s])]) for s in (right, wrong)]
    assert [re.search(r"#(\d+)", c).group(1) for c in captions] == [str(i) for i in best]
    assert captions[0].startswith("most confident right") and captions[1].startswith("most confident wrong")
    for image in (i for i in page.images if i["alt"] in captions):
        with Image.open(io.BytesIO(decode(image["src"])[1])) as picture:
            assert picture.size[0] > 3 * 8 * 4  # three enlarged 8x8 panels side by side


def test_explain_and_save_input_refuse_one_folder(course_run, tmp_path):
    Image.new("RGB", (64, 64), "orange").save(tmp_path / "a.png")
    result = run_cli("predict", "--model", course_run, "--save-input", tmp_path / "out", "--explain",
                     tmp_path / "out", tmp_path / "a.png")
    assert result.returncode == 1 and result.stderr.startswith(f"error: --explain {tmp_path / 'out'}: the same folder")
    assert not (tmp_path / "out").exists()


def test_an_images_probability_is_the_same_bits_alone_in_a_batch_and_explained(course_run, course_dir):
    from pipeline.data import load_split
    from pipeline.predict import classify

    model, x = load_model(course_run), load_split(course_dir / "test_catvnoncat.h5", "test").x  # (50, 64, 64, 3)
    together, _ = classify(model, x, model.threshold)  # (1, 50)
    for i in range(len(x)):
        assert together[0, i] == classify(model, x[i:i + 1], model.threshold)[0][0, 0]
        assert together[0, i] == explain(model, x[i], model.threshold, f"#{i}")[0]["probability"]


def test_a_region_that_contributes_nothing_pushes_towards_neither_class(tmp_path):
    """Under divide255 a black region contributes exactly 0: its `towards` is null, not the first class."""
    from tests.test_hostile_inputs import small_model

    model = small_model(tmp_path / "m.npz")  # 4x4 images, w all +0.01: one cell
    Image.new("RGB", (4, 4), "black").save(tmp_path / "black.png")
    Image.new("RGB", (4, 4), "red").save(tmp_path / "red.png")
    run_cli("predict", "--model", model, tmp_path / "black.png", tmp_path / "red.png", "--explain", tmp_path / "out",
            check=0)
    black, red = (json.loads(next((tmp_path / "out").glob(f"*_{name}.json")).read_text())["top_cells"]
                  for name in ("black", "red"))
    assert black == [{"top": 0, "left": 0, "height": 4, "width": 4, "contribution": 0.0, "towards": None}]
    assert red[0]["contribution"] == pytest.approx(0.16) and red[0]["towards"] == "cat"


def test_the_picture_is_titled_with_the_file_name_p_and_the_threshold():
    from pipeline.explain import headline, picture

    model = random_model("divide255")
    pixels = np.random.default_rng(1).integers(0, 256, model.image_shape, dtype=np.uint8)
    record, c = explain(model, pixels, 0.5, "holiday/IMG_0042.jpg")
    p = record["probability"]
    assert headline(record) == f"IMG_0042.jpg: {record['label']}, p = {p:.3f} {'>' if p > 0.5 else '<='} threshold 0.5"
    assert headline({**record, "threshold": 0.999})[-25:] == f"p = {p:.3f} <= threshold 0.999"[-25:]
    hostile = headline({**record, "path": "a\nb" + "x" * 200 + ".jpg"})  # a name is data: one line, bounded
    assert "\n" not in hostile and hostile.startswith("a\\nbxxx") and len(hostile) < 120
    # the title is drawn: two names give pictures that differ in the title's rows, and only there
    one, other = (np.asarray(picture(model, pixels, {**record, "path": name}, c))
                  for name in ("IMG_0042.jpg", "zebra_on_a_sofa.jpg"))
    assert (one[:24] != other[:24]).any() and (one[24:] == other[24:]).all()
