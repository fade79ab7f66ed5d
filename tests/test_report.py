"""report.html and its pictures, made by real `train`/`evaluate`/`report` runs on a small generated HDF5 dataset."""
import base64
import csv
import io
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.artifacts import load_model
from pipeline.pictures import weights_pixels
from tests.conftest import ROOT, run_cli, train_cli

SECTIONS = {"overview", "threshold", "cost", "misclassified", "weights", "explained", "confusion", "curves", "confident",
            "settings", "provenance"}
FILES = ["cost_curve.svg", "cost_curve.png", "confusion.png", "roc.svg", "pr.svg", "weights.png",
         "misclassified/grid.png"]
SVG = "{http://www.w3.org/2000/svg}"


def write_split(path, split, x, y):
    with h5py.File(path, "w") as f:
        f[f"{split}_set_x"] = x
        f[f"{split}_set_y"] = y
        f["list_classes"] = np.array([b"non-cat", b"cat"])


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """8x8 images in the course schema: 'cats' have a brighter red centre, with enough noise for mistakes."""
    folder = tmp_path_factory.mktemp("small-data")
    rng = np.random.default_rng(0)
    for split, m in (("train", 60), ("test", 30)):
        y = np.arange(m) % 2
        x = rng.normal(110, 45, size=(m, 8, 8, 3))
        x[:, 2:6, 2:6, 0] += 40 * y[:, None, None]
        write_split(folder / f"{split}_catvnoncat.h5", split, np.clip(x, 0, 255).astype(np.uint8), y)
    return folder


def train_small(data, run_dir, *sets):
    return train_cli(data, run_dir, "train.num_iterations=300", "train.print_every=10", *sets)


@pytest.fixture(scope="module")
def small_run(small_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    train_small(small_data, run_dir)
    return run_dir


class Page(HTMLParser):
    """What a reader of the page gets: section ids, images (src, alt), table rows (and each row's class), links,
    tooltips (title attributes), the tags used and the text."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.images, self.rows, self.tags, self.text = [], [], [], set(), []
        self.row_classes, self.links, self.titles = [], [], []
        self.in_cell = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "tr":
            self.rows.append([])
            self.row_classes.append(attrs.get("class"))
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
            self.in_cell = True
        if "title" in attrs:
            self.titles.append(attrs["title"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self.in_cell:
            self.rows[-1][-1] += data


def decode(src):
    head, _, data = src.partition(",")
    assert head in ("data:image/png;base64", "data:image/svg+xml;base64"), head
    return head, base64.b64decode(data)


def polyline_points(svg_text):
    """The points of each polyline of an SVG document, as arrays of shape (k, 2)."""
    root = ET.fromstring(svg_text)
    return [np.array([p.split(",") for p in line.get("points").split()], float)
            for line in root.iter(f"{SVG}polyline")]


def read_costs(run_dir):
    with open(run_dir / "costs.csv") as f:
        return np.array([float(r["cost"]) for r in csv.DictReader(f)])


def test_report_is_self_contained_and_shows_every_section(small_run):
    page = Page((small_run / "report.html").read_text())
    assert set(page.sections) == SECTIONS
    assert not page.tags & {"script", "link", "iframe", "object"}  # no javascript, nothing fetched
    for attrs in page.images:
        head, data = decode(attrs["src"])
        if head.endswith("png;base64"):
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        else:
            assert ET.fromstring(data).tag == f"{SVG}svg"
    with open(small_run / "misclassified" / "index.csv") as f:
        wrong = list(csv.DictReader(f))
    captions = [CAPTION.fullmatch(a["alt"]) for a in page.images if a["alt"].startswith("test image #")]
    assert all(captions) and 0 < len(wrong) <= 24
    p = [float(c["p"]) for c in captions[:len(wrong)]]
    assert p == sorted(p, key=lambda v: -max(v, 1 - v))  # surest mistakes first
    assert {int(c["index"]) for c in captions[:len(wrong)]} == {int(r["index"]) for r in wrong}
    assert f"Misclassified test images ({len(wrong)} of 30)" in page.text
    for c in captions:  # p against the threshold decides the answer, as the caption says
        assert (float(c["p"]) > float(c["t"])) == (c["sign"] == ">") == (c["answer"] == "cat")
    assert [s for s in page.sections if s in ("overview", "threshold", "cost", "misclassified", "weights")] == \
        ["overview", "threshold", "cost", "misclassified", "weights"]  # the story's order


CAPTION = re.compile(r"test image #(?P<index>\d+): true (?P<true>\S+); p = (?P<p>[\d.]+) (?P<sign>[<>≤]) "
                     r"threshold (?P<t>[\d.]+) → (?P<answer>\S+)")


def test_the_pictures_are_also_standalone_files(small_run):
    for name in FILES:
        if name.endswith(".png"):
            with Image.open(small_run / name) as image:
                image.load()
        else:
            ET.parse(small_run / name)


def test_cost_curve_has_one_point_per_recorded_cost_and_is_the_inlined_one(small_run):
    costs = read_costs(small_run)
    svg_text = (small_run / "cost_curve.svg").read_text()
    [points] = polyline_points(svg_text)
    assert len(points) == len(costs) == 30
    # x grows with the iteration, y (pixels, downwards) is an affine decreasing function of the cost
    assert np.all(np.diff(points[:, 0]) > 0)
    slope, offset = np.polyfit(costs, points[:, 1], 1)
    assert slope < 0 and np.max(np.abs(slope * costs + offset - points[:, 1])) < 0.1
    page = Page((small_run / "report.html").read_text())
    [cost] = [a for a in page.images if a["alt"] == "cost by iteration"]
    assert decode(cost["src"])[1].decode() == svg_text


def test_log_scale_cost_axis(small_run, tmp_path):
    run = shutil.copytree(small_run, tmp_path / "run")
    run_cli("report", run, "--set", "report.cost_scale=log", check=0)
    costs = read_costs(run)
    svg_text = (run / "cost_curve.svg").read_text()
    [points] = polyline_points(svg_text)
    slope, offset = np.polyfit(np.log10(costs), points[:, 1], 1)
    assert np.max(np.abs(slope * np.log10(costs) + offset - points[:, 1])) < 0.1
    assert "cost (log scale)" in svg_text


def test_weights_image_has_the_models_image_shape(small_run):
    model = load_model(small_run)
    with Image.open(small_run / "weights.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (8 * 4, 8 * 4, 3)  # image_shape (8, 8, 3), enlarged 4 times (evaluate.enlarge)
    np.testing.assert_array_equal(pixels[::4, ::4], weights_pixels(model.w, model.image_shape))


def test_weights_pixels_put_zero_at_grey_and_follow_the_flatten_order():
    v = np.zeros((2, 3, 3))
    v[0, 1, 2], v[1, 0, 0] = 2.0, -1.0
    w = v.reshape(1, -1).T  # what features.flatten does to one image: (1, h*w*3) -> (n_x, 1)
    pixels = weights_pixels(w, (2, 3, 3))
    assert pixels[0, 1, 2] == 255 and pixels[1, 0, 0] == 64 and pixels[0, 0, 0] == 128


def test_evaluate_rewrites_the_report(small_run):
    (small_run / "report.html").unlink()
    (small_run / "weights.png").unlink()
    result = run_cli("evaluate", "--run", small_run, check=0)
    assert "report.html" in result.stderr
    assert (small_run / "report.html").is_file() and (small_run / "weights.png").is_file()


def broken_copy(small_run, tmp_path, name, text):
    """A copy of the run with the file `name` replaced by text (removed when text is None; name None: intact)."""
    run = shutil.copytree(small_run, tmp_path / "run")
    if name:
        (run / name).write_text(text) if text is not None else (run / name).unlink()
    return run


@pytest.mark.parametrize("name, text, sets, message", [
    ("costs.csv", "iteration;cost\n", [], "costs.csv: expected a header 'iteration,cost' and at least one row"),
    ("costs.csv", "iteration,cost\n0,low\n", [], "costs.csv: every row must be 'iteration,cost' with numbers"),
    ("costs.csv", "iteration,cost\n0,nan\n", [], "costs.csv: costs must be finite"),
    ("costs.csv", "iteration,cost\n0,0.5\n10,0.0\n", ["report.cost_scale=log"],
     "costs.csv: costs must be finite and positive for report.cost_scale log"),
    ("costs.csv", None, [], "costs.csv: no such file"),
    ("metrics.json", None, [], "metrics.json: no such file; run `python -m pipeline evaluate` to write it"),
    ("metrics.json", "{", [], "metrics.json: not valid JSON"),
    ("metrics.json", '{"train": {}, "test": {}}', [],
     "metrics.json: expected train and test metrics, each with accuracy, log_loss"),
    ("model.npz", None, [], "model.npz: no such model file"),
    ("config.yaml", "report:\n  cost_scale: cubic\n", [],
     "config.yaml: report.cost_scale must be one of linear, log, got 'cubic'"),
    (None, None, ["report.cost_scale=cubic"], "--set report.cost_scale=cubic: report.cost_scale must be one of linear, log, got 'cubic'"),
])
def test_a_bad_run_folder_is_refused_in_one_line_and_the_old_report_is_kept(small_run, tmp_path, name, text, sets,
                                                                            message):
    run = broken_copy(small_run, tmp_path, name, text)
    before = (run / "report.html").read_bytes()
    args = ["report", run] + [a for s in sets for a in ("--set", s)]
    result = run_cli(*args)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (run / "report.html").read_bytes() == before
    assert not list(run.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "{d}: not a run folder (no config.yaml) nor a sweep folder (no run folders in it)"),
    (lambda d: d / "missing", "{d}/missing: no such folder"),
])
def test_report_of_something_else_is_refused(tmp_path, make, message):
    result = run_cli("report", make(tmp_path))
    assert result.returncode == 1 and result.stderr == f"error: {message.format(d=tmp_path)}\n"


def test_report_without_any_run_says_to_train_first(tmp_path):
    result = run_cli("report", cwd=tmp_path)
    assert result.returncode == 1 and "runs: no run with a model.npz found; train one first" in result.stderr


def test_a_test_set_of_one_class_gets_a_report_that_says_the_curves_are_undefined(small_data, tmp_path):
    data = shutil.copytree(small_data, tmp_path / "data")
    with h5py.File(small_data / "test_catvnoncat.h5", "r") as f:
        x = f["test_set_x"][()]
    write_split(data / "test_catvnoncat.h5", "test", x, np.zeros(len(x), dtype=np.int64))
    train_small(data, tmp_path / "run")
    page = Page((tmp_path / "run" / "report.html").read_text())
    assert "The test set holds a single class: ROC and precision-recall are undefined." in page.text
    assert ["ROC AUC", "1.0000", "undefined"] in page.rows and set(page.sections) == SECTIONS
    assert ["Majority baseline", "50.00 %", "100.00 %"] in page.rows  # non-cat, the majority answer, is always right here
    assert not (tmp_path / "run" / "roc.svg").exists()


def test_numbers_read_as_percentages_and_five_significant_digits_with_every_digit_in_a_tooltip(small_run):
    import json

    metrics = json.loads((small_run / "metrics.json").read_text())
    page = Page((small_run / "report.html").read_text())
    rows = {row[0]: row[1:] for row in page.rows if len(row) == 3}
    for split, k in (("train", 0), ("test", 1)):
        m = metrics[split]
        assert rows["Accuracy"][k] == f"{100 * m['accuracy']:.2f} %" and rows["F1"][k] == f"{100 * m['f1']:.2f} %"
        assert len(rows["Log loss"][k].replace("0.", "", 1).lstrip("0")) == 5  # 5 significant digits, zeros kept
        assert float(rows["Log loss"][k]) == pytest.approx(m["log_loss"], rel=1e-4)
        assert str(m["log_loss"]) in page.titles and rows["Images"][k] == str(m["count"])
    assert rows[""] == ["Train", "Test"] and "majority_accuracy" in page.titles  # the JSON key in a tooltip
    assert f"Train accuracy {100 * metrics['train']['accuracy']:.2f} %" in "".join(page.text)


def test_the_report_ends_with_the_runs_provenance(small_run, small_data):
    import hashlib
    import json

    record = json.loads((small_run / "run.json").read_text())
    page = Page((small_run / "report.html").read_text())
    assert page.sections[-1] == "provenance"
    rows = {row[0]: row[1] for row in page.rows[page.rows.index(["what", "value"]) + 1:]}
    assert rows["code version"].startswith(f"catneuron {record['versions']['catneuron']}, git commit "
                                           f"{record['git_commit']}")
    assert f"numpy {np.__version__}" in rows["packages"] and rows["config file"] == record["config_file"]
    assert rows["started"] == record["started"].replace("T", " ").replace("+00:00", " UTC")
    assert rows["duration"] == f"{record['duration_s']:.2f} s"
    for name in ("train_catvnoncat.h5", "test_catvnoncat.h5"):
        assert rows[f"data sha256: {name}"] == hashlib.sha256((small_data / name).read_bytes()).hexdigest()


def test_train_computes_each_splits_logits_once_and_hands_them_over(small_data, tmp_path, monkeypatch):
    """evaluate, the report and the printed accuracies share one Z per split (the whole run's fixed cost)."""
    from pipeline.artifacts import Model
    from pipeline.config import load_config
    from pipeline.train import load_splits, train
    config = load_config(ROOT / "configs/default.yaml", [f"data.dir={small_data}", "train.num_iterations=20"])
    train_set, val_set, test_set = load_splits(config)
    seen, logits_of = [], Model.logits
    monkeypatch.setattr(Model, "logits", lambda self, x, *a: seen.append(x.shape[0]) or logits_of(self, x, *a))
    logits = {}
    _, model, _ = train(config, train_set, test_set, "small", tmp_path / "run", val_set=val_set, logits=logits)
    assert sorted(n for n in seen if n > 1) == [30, 60]  # explain's single images aside, each split once
    for name, split in (("train", train_set), ("test", test_set)):
        np.testing.assert_array_equal(logits[name], logits_of(model, split.x))
