"""Folder datasets through the real CLI: refusals in one line, and prepare + train + evaluate + audit."""
import json
import os

import h5py
import numpy as np
import pytest

from pipeline.data import load_course
from tests.conftest import ROOT, run_cli
from tests.imagefolders import make_folder, write_config


@pytest.fixture
def photos(tmp_path):
    make_folder(tmp_path / "photos", counts=(("cat", 10), ("non-cat", 5)))
    write_config(tmp_path / "c.yaml", "photos")
    return tmp_path / "photos"


def _break(kind, tmp_path):
    """Spoil the generated dataset in one way; return extra CLI arguments."""
    photos = tmp_path / "photos"
    if kind == "no root":
        write_config(tmp_path / "c.yaml", "")
    elif kind == "one class":
        for p in (photos / "non-cat").iterdir():
            p.unlink()
        (photos / "non-cat").rmdir()
    elif kind in ("empty class", "only a pipe"):
        for p in (photos / "non-cat").iterdir():
            p.unlink()
        (photos / "non-cat" / "readme.txt").write_text("no pictures here")
        if kind == "only a pipe":  # named like a photo, but no image: still no image files
            os.mkfifo(photos / "non-cat" / "pipe.jpg")
            (photos / "non-cat" / "gone.jpg").symlink_to(photos / "nowhere.jpg")
    elif kind in ("no usable", "no usable class"):
        for p in (photos / "non-cat").iterdir():
            p.write_text("not a picture")
        if kind == "no usable":
            for p in (photos / "cat").iterdir():
                p.write_text("not a picture")
    elif kind == "occupied":
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "processed").write_text("a file where the folder should be")
    return {"missing root": ["--set", "data.root=nowhere"], "overlap": ["--set", "data.negative=cat"],
            "empty test": ["--set", "data.test_fraction=0.01"], "bad name": ["--set", "data.name=a/b"]}.get(kind, [])


@pytest.mark.parametrize("kind, message", [
    ("no root", "error: data.root: required when data.source is folder"),
    ("missing root", "error: nowhere: no such folder (data.root or data.test_root)"),
    ("one class", "error: photos/non-cat: class folder missing; both classes need a folder "
                  "(data.positive: cat, data.negative: non-cat; folders found: cat)"),
    ("empty class", "error: photos/non-cat: class folder holds no image files"),
    ("only a pipe", "error: photos/non-cat: class folder holds no image files"),
    ("no usable", "error: photos: no usable images (15 skipped)"),
    ("no usable class", "error: photos: no usable training images of class 'non-cat'; training needs examples"),
    ("occupied", "error: data/processed: cannot write the prepared dataset: File exists"),
    ("overlap", "error: data.positive and data.negative both name the folder 'cat'"),
    ("empty test", "error: photos: the test split has no usable images (data.test_fraction is 0.01)"),
    ("bad name", "error: --set data.name=a/b: data.name must be a plain folder name, got 'a/b'"),
])
def test_bad_folders_are_refused_in_one_line_and_leave_nothing(kind, message, tmp_path, photos):
    result = run_cli("prepare", "--config", "c.yaml", "--workers", "1", *_break(kind, tmp_path), cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    processed = tmp_path / "data" / "processed"
    assert not processed.is_dir() or not any(processed.iterdir())  # not even a temporary folder


def test_prepare_refuses_a_course_config_and_bad_worker_counts(tmp_path):
    result = run_cli("prepare", "--config", write_config(tmp_path / "c.yaml", "x", source="course"), cwd=tmp_path)
    assert result.returncode == 1 and "data.source is 'course'; prepare needs a folder dataset" in result.stderr
    result = run_cli("prepare", "--config", "c.yaml", "--workers", "0", cwd=tmp_path)
    assert result.returncode == 2 and "must be a whole number >= 1, got '0'" in result.stderr


def test_prepare_train_evaluate_audit_on_a_generated_folder(tmp_path, photos):
    (photos / "cat" / "broken.jpg").write_text("not a picture")
    result = run_cli("prepare", "--config", "c.yaml", cwd=tmp_path, check=0)
    assert result.stdout.startswith("data/processed/photos: train 12 (non-cat 4, cat 8), test 3 (non-cat 1, cat 2)\n")
    assert "skipped 1 files:\n  cat/broken.jpg: not an image (a text file)\n" in result.stdout
    assert run_cli("prepare", "--config", "c.yaml", "--strict", cwd=tmp_path).stderr == (
        "error: data/processed/photos/prepare_report.json: 1 files were skipped (first: cat/broken.jpg); "
        "--strict refuses any skipped file\n")

    result = run_cli("train", "--config", "c.yaml", "--run-dir", "run", cwd=tmp_path, check=0)
    assert "up to date (same sources and settings), not prepared again" in result.stderr
    assert result.stdout.startswith("Cost after iteration 0: 0.693147\nCost after iteration 10: ")
    run = tmp_path / "run"
    assert {"config.yaml", "costs.csv", "metrics.json", "misclassified", "model.npz", "report.html",
            "run.json"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["train"]["count"], metrics["test"]["count"]) == (12, 3)
    assert "no exact or near duplicates among the images." in (run / "report.html").read_text()
    with np.load(run / "model.npz") as model:
        assert list(model["image_shape"]) == [8, 8, 3] and list(model["classes"]) == ["non-cat", "cat"]
    result = run_cli("evaluate", "--run", "run", cwd=tmp_path, check=0)
    assert result.stdout.splitlines() == [l for l in run_cli("train", "--config", "run/config.yaml", cwd=tmp_path,
                                                               check=0).stdout.splitlines() if "accuracy" in l]
    (photos / "cat" / "new.png").write_bytes((photos / "cat" / "000.png").read_bytes())  # the sources change
    before = (tmp_path / "data/processed/photos/train.h5").stat().st_mtime_ns
    run_cli("report", "run", cwd=tmp_path, check=0)  # redraws from the dataset as it is: never prepares
    assert (tmp_path / "data/processed/photos/train.h5").stat().st_mtime_ns == before
    (photos / "cat" / "new.png").unlink()

    result = run_cli("train", "--config", "c.yaml", "--set", "data.image_size=4", cwd=tmp_path, check=0)
    assert "data/processed/photos: prepared 15 images" in result.stderr  # a new size is a new dataset
    with h5py.File(tmp_path / "data/processed/photos/train.h5", "r") as f:
        assert f["train_set_x"].shape == (12, 4, 4, 3)


def test_audit_finds_planted_duplicates_leaks_and_label_conflicts(tmp_path, photos):
    held_out = tmp_path / "held-out"
    make_folder(held_out, counts=(("cat", 2), ("non-cat", 2)), seed=9)
    (held_out / "cat" / "copy.png").write_bytes((photos / "cat" / "000.png").read_bytes())  # exact leak
    (photos / "non-cat" / "relabelled.png").write_bytes((photos / "cat" / "002.png").read_bytes())  # conflict
    from PIL import Image
    near = np.asarray(Image.open(photos / "non-cat" / "000.png")).astype(np.int64) + 3  # a near leak
    Image.fromarray(np.clip(near, 0, 255).astype(np.uint8)).save(held_out / "non-cat" / "near.png")
    write_config(tmp_path / "c.yaml", "photos", test_root="held-out")
    result = run_cli("audit", "--config", "c.yaml", "--json", cwd=tmp_path, check=0)
    audit = json.loads(result.stdout)
    exact = {tuple(g["examples"]): (g["leak"], g["label_conflict"]) for g in audit["exact_duplicates"]["listed"]}
    assert exact == {("train:cat/000.png", "test:cat/copy.png"): (True, False),
                     ("train:cat/002.png", "train:non-cat/relabelled.png"): (False, True)}
    [pair] = audit["near_duplicates"]["listed"]
    assert pair["examples"] == ["train:non-cat/000.png", "test:non-cat/near.png"] and pair["leak"]
    assert 0 < pair["distance"] < 0.02
    assert audit["balance"]["test"] == {"non-cat": 3, "cat": 3, "positive_fraction": 0.5}
    text = run_cli("audit", "--config", "c.yaml", cwd=tmp_path, check=0).stdout
    assert "train:cat/000.png (cat) = test:cat/copy.png (cat) [leak]" in text
    assert ("warning: held-out: 2 images of data.test_root are also in data.root (exact or near duplicates), so "
            "the test score is flattered: held-out/cat/copy.png = photos/cat/000.png; held-out/non-cat/near.png = "
            "photos/non-cat/000.png\n") in result.stderr
    result = run_cli("prepare", "--config", "c.yaml", "--strict", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("error: held-out: 2 images of data.test_root are also")
    assert result.stderr.endswith("; --strict refuses a test set that leaks into training\n")
    assert result.stderr.count("\n") == 1
    run_cli("train", "--config", "c.yaml", "--run-dir", tmp_path / "run", cwd=tmp_path, check=0)  # the report says it
    assert ("Warning: 2 test images of data.test_root are also in data.root (exact or near duplicates), so this test "
            "score is flattered.") in (tmp_path / "run" / "report.html").read_text()


def test_audit_of_the_course_data_lists_exactly_its_train_test_copies(course_dir, tmp_path):
    result = run_cli("audit", "--config", ROOT / "configs/default.yaml", "--set", f"data.dir={course_dir}", "--json",
                     cwd=tmp_path, check=0)
    audit = json.loads(result.stdout)
    train, test = load_course(course_dir)
    copies = {(f"train:{i}", f"test:{j}") for i in range(train.m) for j in range(test.m)
              if np.array_equal(train.x[i], test.x[j])}  # brute force, independent of the audit's hashing
    leaks = {tuple(g["examples"]) for g in audit["exact_duplicates"]["listed"] if g["leak"]}
    assert leaks == copies and audit["exact_duplicates"]["leaks"] == len(copies)
    assert audit["balance"]["train"]["cat"] == int(train.y.sum())


def test_a_fifo_a_device_and_a_broken_link_are_skipped_by_name_and_refused_by_strict(tmp_path, photos):
    """Entries of a class folder that are not regular files are not left out unmentioned: each is a skipped
    file with its reason, and --strict refuses the first (nothing blocks on the pipe or reads /dev/zero)."""
    os.mkfifo(photos / "cat" / "pipe.jpg")
    (photos / "cat" / "zero.jpg").symlink_to("/dev/zero")
    (photos / "non-cat" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = run_cli("prepare", "--config", "c.yaml", "--workers", "1", cwd=tmp_path, check=0)
    report = json.loads((tmp_path / "data" / "processed" / "photos" / "prepare_report.json").read_text())
    assert report["skipped"] == [{"file": "cat/pipe.jpg", "reason": "unreadable (not a regular file)"},
                                 {"file": "cat/zero.jpg", "reason": "unreadable (not a regular file)"},
                                 {"file": "non-cat/gone.jpg", "reason": "unreadable (No such file or directory)"}]
    assert "skipped 3 files:\n  cat/pipe.jpg: unreadable (not a regular file)\n" in result.stdout
    result = run_cli("prepare", "--config", "c.yaml", "--workers", "1", "--strict", "--force", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr == ("error: photos/cat/pipe.jpg: unreadable (not a regular "
                                                        "file); --strict refuses any skipped file\n")
