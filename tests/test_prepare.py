"""The prepare stage on generated folders of real PNG and JPEG files: exact arrays, split, skips, cache."""
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.config import load_config
from pipeline.files import sha256_file
from pipeline.prepare import prepare
from tests.imagefolders import make_folder, write_config


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A generated dataset under tmp_path/photos, tmp_path as the working folder; returns its expected pixels."""
    monkeypatch.chdir(tmp_path)
    return make_folder(tmp_path / "photos", counts=(("cat", 10), ("non-cat", 5)))


def run(tmp_path, workers=1, **data):
    config = load_config(write_config(tmp_path / "c.yaml", tmp_path / "photos", **data))
    return prepare(config, workers=workers)


def read(path, split):
    with h5py.File(path, "r") as f:
        return {k.removeprefix(f"{split}_set_"): f[k][()] for k in f}


def test_the_written_files_hold_exactly_the_images_labels_and_provenance(tmp_path, folder):
    out, report, built = run(tmp_path)
    assert built and out == Path("data/processed/photos")
    seen = {}
    for split in ("train", "test"):
        d = read(out / f"{split}.h5", split)
        assert list(d["list_classes"]) == [b"non-cat", b"cat"]
        sources = [s.decode() for s in d["source"]]
        assert sources == sorted(sources)
        for x, y, source, digest in zip(d["x"], d["y"], sources, d["sha256"]):
            np.testing.assert_array_equal(x, folder[source])
            assert y == (source.startswith("cat/")) and digest.decode() == sha256_file(tmp_path / "photos" / source)
            seen[source] = split
    assert sorted(seen) == sorted(folder)  # every image in exactly one split
    assert report["counts"] == {"train": {"non-cat": 4, "cat": 8}, "test": {"non-cat": 1, "cat": 2}}
    assert json.loads((out / "prepare_report.json").read_text())["counts"] == report["counts"]


def test_the_split_is_stratified_and_the_same_for_the_same_seed(tmp_path, folder):
    def test_sources(seed):
        out, _, _ = run(tmp_path, test_fraction=0.4, split_seed=seed)
        return [s.decode() for s in read(out / "test.h5", "test")["source"]]
    first = test_sources(0)
    assert sum(s.startswith("cat/") for s in first) == 4 and sum(s.startswith("non-cat/") for s in first) == 2
    assert test_sources(0) == first
    assert test_sources(1) != first


@pytest.mark.parametrize("window_bytes", [None, 1], ids=["one window", "windows of 8 images"])
def test_worker_processes_give_the_same_files_as_one_process(tmp_path, folder, monkeypatch, window_bytes):
    out, one_report, _ = run(tmp_path, workers=1)
    one = read(out / "train.h5", "train")
    if window_bytes:  # the shared memory holds 8 images (the least for 2 workers): 15 images pass in 2 windows
        monkeypatch.setattr("pipeline.prepare.WINDOW_BYTES", window_bytes)
    out, two_report, _ = run(tmp_path, workers=2, name="parallel")
    two = read(out / "train.h5", "train")
    for key in ("x", "y", "source", "sha256"):
        np.testing.assert_array_equal(one[key], two[key])
    assert two_report["audit"] == one_report["audit"]  # the thumbnails came through the shared memory too


def test_a_file_over_the_read_limit_is_hashed_and_decoded_as_a_stream_to_the_same_result(tmp_path, folder,
                                                                                         monkeypatch):
    def no_second_read(path):
        raise AssertionError(f"{path} read again to be hashed")

    with monkeypatch.context() as patch:  # every file read once into memory: hashed and decoded from its bytes
        patch.setattr("pipeline.prepare.sha256_file", no_second_read)
        out, _, _ = run(tmp_path)
    whole = read(out / "train.h5", "train")
    monkeypatch.setattr("pipeline.prepare.READ_WHOLE_BYTES", 0)  # every file is "large": streamed twice
    out, _, _ = run(tmp_path, name="streamed")
    streamed = read(out / "train.h5", "train")
    for key in ("x", "source", "sha256"):
        np.testing.assert_array_equal(whole[key], streamed[key])


def test_read_small_is_bounded_and_never_waits_on_a_pipe(tmp_path, monkeypatch):
    from pipeline.prepare import read_small
    (tmp_path / "photo.jpg").write_bytes(b"x" * 100)
    assert read_small(tmp_path / "photo.jpg") == b"x" * 100
    monkeypatch.setattr("pipeline.prepare.READ_WHOLE_BYTES", 99)  # over the limit: left to be streamed
    assert read_small(tmp_path / "photo.jpg") is None
    os.mkfifo(tmp_path / "pipe.jpg")  # a file replaced by a pipe after the scan: an open for reading would block
    with pytest.raises(OSError, match="not a regular file"):
        read_small(tmp_path / "pipe.jpg")


def test_a_validation_fraction_writes_val_h5_and_a_test_root_replaces_the_split(tmp_path, folder):
    out, report, _ = run(tmp_path, val_fraction=0.2)
    assert report["counts"]["val"] == {"non-cat": 1, "cat": 2} and (out / "val.h5").is_file()
    make_folder(tmp_path / "held-out", counts=(("cat", 2), ("non-cat", 3)), seed=5)
    out, report, _ = run(tmp_path, test_root=str(tmp_path / "held-out"), name="two-roots")
    assert report["counts"] == {"train": {"non-cat": 5, "cat": 10}, "test": {"non-cat": 3, "cat": 2}}


def test_bad_files_are_skipped_and_listed_and_strict_refuses_them(tmp_path, folder):
    photos = tmp_path / "photos"
    (photos / "cat" / "notes.txt").write_text("not a picture")
    (photos / "cat" / ".DS_Store").write_bytes(b"\0")
    (photos / "cat" / "text.jpg").write_text("not a picture either")
    jpeg = (photos / "cat" / "001.jpg").read_bytes()
    (photos / "cat" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    make_folder(photos / "cat" / "tiny", counts=(("sub", 1),), size=4)
    out, report, _ = run(tmp_path, min_size=8)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons["cat/text.jpg"] == "not an image (a text file)"
    assert reasons["cat/cut.jpg"].startswith("truncated")
    assert reasons["cat/tiny/sub/000.png"] == "too small (4x4 px, data.min_size is 8)"
    assert report["ignored"] == ["cat/.DS_Store", "cat/notes.txt"]
    assert sum(sum(c.values()) for c in report["counts"].values()) == 15
    config = load_config(write_config(tmp_path / "s.yaml", photos, name="strict"))
    with pytest.raises(PipelineError, match="cut.jpg: truncated .*; --strict refuses any skipped file"):
        prepare(config, workers=2, strict=True)
    assert not (tmp_path / "data" / "processed" / "strict").exists()
    assert [p.name for p in (tmp_path / "data" / "processed").iterdir()] == ["photos"]  # no temporary left


def test_a_second_prepare_does_no_work_and_a_change_redoes_it(tmp_path, folder):
    out, _, built = run(tmp_path)
    stamp = (out / "train.h5").stat().st_mtime_ns
    assert run(tmp_path)[2] is False and (out / "train.h5").stat().st_mtime_ns == stamp
    image = tmp_path / "photos" / "cat" / "000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # touched
    assert run(tmp_path)[2] is True
    assert run(tmp_path)[2] is False
    out, _, built = run(tmp_path, image_size=4)
    assert built and read(out / "train.h5", "train")["x"].shape[1:] == (4, 4, 3)
    assert run(tmp_path, image_size=4)[2] is False
    assert prepare(load_config(tmp_path / "c.yaml"), workers=1, force=True)[2] is True


def test_the_folder_example_config_loads_and_comments_every_key(tmp_path):
    from tests.conftest import ROOT

    text = (ROOT / "configs" / "folder_example.yaml").read_text()
    config = load_config(ROOT / "configs" / "folder_example.yaml")
    assert config.data.source == "folder" and config.data.root == "data/photos"
    keys = [line.split(":")[0].strip() for line in text.splitlines() if line.startswith("  ")]
    assert all("#" in line for line in text.splitlines() if line.startswith("  "))
    assert set(keys) >= set(config.to_dict()["data"])
