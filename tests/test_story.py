"""A run tells its story: the closing summary on stderr, the report's verdict, threshold and kept iteration, and
mistakes named by their source files, through real `train` runs on generated folders and course-schema files."""
import csv
import json
import re
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.data import SOURCE_MAX, load_split
from pipeline.story import kept_words, l2_words, summary, verdict
from tests.conftest import ROOT, run_cli
from tests.imagefolders import make_hard_folder
from tests.test_report import Page, small_data, train_small, write_split  # noqa: F401

LESSON_LINE = re.compile(r"(Cost after iteration \d+: \d+\.\d{6}|(train|test) accuracy: [\d.]+ %)")


def folder_config(path, root):
    path.write_text(f"base: {ROOT / 'configs' / 'folder_example.yaml'}\n"
                    f"data: {{root: {root}, image_size: 16, name: hard}}\n"
                    "train: {solver: primal, learning_rate: auto, l2: 0, early_stopping: true, num_iterations: 200, "
                    "print_every: 10}\n"
                    "evaluate: {enlarge: 2}\n")
    return path


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A folder run with validation, early stopping and the threshold chosen on it: about 40 mistakes."""
    work = tmp_path_factory.mktemp("story")
    make_hard_folder(work / "photos", per_class=200, size=16)
    result = run_cli("train", "--config", folder_config(work / "hard.yaml", work / "photos"), "--run-dir",
                     work / "run", cwd=work, check=0)
    return work / "run", result


def test_the_closing_summary_follows_the_lessons_lines_on_stderr(small_data, tmp_path):  # noqa: F811
    result = train_small(small_data, tmp_path / "run")
    assert all(LESSON_LINE.fullmatch(line) for line in result.stdout.splitlines())  # stdout: the lesson's only
    lines = result.stderr.splitlines()
    start = lines.index("") + 1
    assert lines[start].split() == ["train", "test"]
    assert re.fullmatch(r"accuracy: +\d+\.\d %  +\d+\.\d %", lines[start + 1])
    assert re.fullmatch(r"majority baseline: +50\.0 %  +50\.0 %", lines[start + 2])
    assert lines[start + 3:] == [
        "threshold:          0.5, as set in the config (evaluate.threshold)",
        "kept:               the last iteration: stopped at the iteration limit (300) before converging",
        f"run folder:         {tmp_path / 'run'}"]
    assert len({len(line) for line in lines[start:start + 3]}) == 1  # the table's columns line up


def test_a_folder_run_summary_names_validation_the_chosen_threshold_and_the_kept_iteration(folder_run):
    run, result = folder_run
    tail = result.stderr.split("\n\n")[-1].splitlines()
    assert tail[0].split() == ["train", "validation", "test"]
    best = re.search(r'"best_iteration": (\d+)', (run / "run.json").read_text()).group(1)
    assert re.fullmatch(r"threshold: +0\.\d+, chosen on the validation split for the best accuracy", tail[3])
    assert re.fullmatch(rf"kept: +iteration {best}: the lowest validation cost \(early stopping; .*\)", tail[4])
    assert tail[5].endswith(str(run)) and len(tail) == 6


@pytest.mark.parametrize("training, words", [
    ({"converged": True, "iterations": 37}, "the last iteration: converged after 37 iterations"),
    ({"converged": False, "iterations": 500}, "the last iteration: stopped at the iteration limit (500) before "
                                              "converging"),
    ({"early_stopping": True, "best_iteration": 100, "stopped_at": 1100},
     "iteration 100: the lowest validation cost (early stopping; stopped at iteration 1100, 1000 iterations later "
     "without a lower one)"),
    ({}, "the weights after all 2000 iterations"),
])
def test_the_kept_weights_are_told_from_what_training_recorded(training, words):
    assert kept_words(training, 2000) == words


def test_a_chosen_l2_is_named_and_a_fixed_one_is_not():
    assert l2_words({"l2": 0.01, "l2_path": [{"l2": 0.01}]}) == "0.01, chosen on the validation split"
    assert l2_words({"l2": 0.01}) is None and l2_words({}) is None
    metrics = {s: {"accuracy": 0.6121883, "majority_accuracy": 0.551, "confusion": [[1, 0], [0, 1]]}
               for s in ("train", "test")}
    lines = summary(metrics, {"training": {"l2": 0.01, "l2_auto": True}}, "runs/x")
    assert "accuracy:           61.2 %  61.2 %" in lines
    assert "l2:                 0.01, chosen on the validation split" in lines


@pytest.mark.parametrize("accuracy, words", [
    (0.612, "Test accuracy 61.2 %, 6.1 points above the majority baseline of 55.1 % (always answering cat)."),
    (0.5, "Test accuracy 50.0 %, 5.1 points below the majority baseline of 55.1 % (always answering cat)."),
    (0.5513, "Test accuracy 55.1 %: no better than the majority baseline of 55.1 % (always answering cat)."),
])
def test_the_verdict_weighs_test_accuracy_against_the_majority_baseline(accuracy, words):
    metrics = {"train": {"accuracy": 0.9, "majority_accuracy": 0.6, "confusion": [[4, 0], [0, 6]]},
               "test": {"accuracy": accuracy, "majority_accuracy": 0.551}}
    assert verdict(metrics, ("non-cat", "cat")) == words


def test_the_report_reads_as_a_story(folder_run):
    run, _ = folder_run
    page = Page((run / "report.html").read_text())
    text = " ".join(page.text)
    assert page.sections[:4] == ["overview", "threshold", "cost", "misclassified"]
    said = re.search(r"Test accuracy \d+\.\d %(, \d+\.\d points (above|below)|: no better than) the majority "
                        r"baseline of 50\.0 % \(always answering non-cat\)\.", text)
    assert said, text[:400]
    threshold = re.search(r'"threshold": ([\d.]+)', (run / "run.json").read_text()).group(1)
    assert (f"The neuron answers cat when its probability p of cat is above {float(threshold):.4g}, chosen on the "
            "validation split for the best accuracy") in text
    best = re.search(r'"best_iteration": (\d+)', (run / "run.json").read_text()).group(1)
    assert f"kept: iteration {best}" in (run / "cost_curve.svg").read_text()  # the kept iteration, marked
    with open(run / "costs.csv") as f:
        kept_cost = next(float(r["cost"]) for r in csv.DictReader(f) if r["iteration"] == best)
    compared = json.loads(run_cli("compare", run, "--json", check=0).stdout)
    assert compared["metrics"]["final_cost"] == [kept_cost]  # compare and sweeps speak of the kept weights too
    mistakes = (run / "misclassified" / "index.csv").read_text().splitlines()
    assert f"The kept weights' training cost (iteration {best}): {kept_cost:#.5g}" in text  # not the last one's
    assert f"The 24 surest, surest first; all {len(mistakes) - 1} on" in text
    assert ["Train", "Validation", "Test"] == page.rows[0][1:]
    assert "True" not in text and "False" not in text and ["train.early_stopping", "Yes"] in page.rows


def test_mistakes_are_named_by_source_file_at_most_24_and_all_on_their_own_page(folder_run):
    run, _ = folder_run
    with open(run / "misclassified" / "index.csv") as f:
        wrong = list(csv.DictReader(f))
    assert len(wrong) > 24, len(wrong)  # the fixture must make more mistakes than the report shows
    photos = run.parent / "photos"
    assert all((photos / r["source"]).is_file() and r["source"].startswith(f"{r['true_label']}/") for r in wrong)
    page = Page((run / "report.html").read_text())
    shown = [a["alt"] for a in page.images if a["alt"].split(":")[0] in {r["source"] for r in wrong}]
    assert len(shown) == 24 and "misclassified/index.html" in page.links
    listed = Listing((run / "misclassified" / "index.html").read_text())
    assert sorted(listed.sources) == sorted(r["source"] for r in wrong)
    assert [s for s in listed.sources][:24] == [alt.split(":")[0] for alt in shown]  # the same surest first
    assert sorted(listed.files) == sorted(r["file"] for r in wrong)
    assert all((run / "misclassified" / name).is_file() for name in listed.files)


class Listing(HTMLParser):
    """misclassified/index.html: each image's file (src) and source (alt)."""

    def __init__(self, text):
        super().__init__()
        self.files, self.sources = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.files.append(dict(attrs)["src"])
            self.sources.append(dict(attrs)["alt"])


def test_the_course_data_has_no_sources_and_its_csv_column_is_empty(small_data, tmp_path):  # noqa: F811
    assert load_split(small_data / "test_catvnoncat.h5", "test").source is None
    train_small(small_data, tmp_path / "run")
    with open(tmp_path / "run" / "misclassified" / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["source"] == "" for r in rows)


def sourced(tmp_path, values, dtype=None):
    path = tmp_path / "s.h5"
    write_split(path, "test", np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]))
    with h5py.File(path, "a") as f:
        f.create_dataset("test_set_source", data=values, dtype=dtype or h5py.string_dtype())
    return path


def test_sources_are_read_when_present(tmp_path):
    assert load_split(sourced(tmp_path, ["cat/a b.jpg", "non-cat/é.png"]), "test").source == ("cat/a b.jpg",
                                                                                             "non-cat/é.png")


@pytest.mark.parametrize("values, dtype, message", [
    (["only one"], None, r"test_set_source must be 2 strings \(one per example\), got object of shape \(1,\)"),
    ([1, 2], "int64", r"test_set_source must be 2 strings \(one per example\), got int64 of shape \(2,\)"),
    (["a", "x" * (SOURCE_MAX + 1)], None, rf"test_set_source: an entry of {SOURCE_MAX + 1} characters, over the "
                                          rf"limit of {SOURCE_MAX}"),
    ([b"a", b"\xff\xfe"], h5py.string_dtype("ascii"), r"test_set_source\[1\]: not UTF-8 text"),
])
def test_bad_sources_are_refused_naming_the_file(tmp_path, values, dtype, message):
    path = sourced(tmp_path, values, dtype)
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(path))}: {message}$"):
        load_split(path, "test")


def test_the_explained_images_are_named_by_their_source_files(folder_run):
    run, _ = folder_run
    page = Page((run / "report.html").read_text())
    captions = [i["alt"] for i in page.images if i["alt"].startswith("most confident")]
    assert len(captions) == 2, captions
    assert all(re.match(r"most confident (right|wrong): [^#,]+/[^,]+\.\w+, true ", c) for c in captions), captions
