"""The prepare stage on generated folders of real PNG and JPEG files: exact arrays, split, skips, cache."""
import json
import os
import shutil
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.config import load_config
from pipeline.files import sha256_file
from pipeline.prepare import prepare, summary
from pipeline.scan import scan, split
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


def _ungrouped_split(labels, test_fraction, val_fraction, seed):
    """The split before groups existed (a copy of it): the oracle for data without duplicates."""
    names = ["train"] * len(labels)
    for label in (0, 1):
        idx = [i for i, y in enumerate(labels) if y == label]
        order = np.random.default_rng([seed, label]).permutation(len(idx))
        n_test, n_val = round(len(idx) * test_fraction), round(len(idx) * val_fraction)
        for k, j in enumerate(order):
            names[idx[j]] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return names


@pytest.mark.parametrize("seed", [0, 7])
def test_the_grouped_split_is_the_plain_split_without_duplicates_and_keeps_groups_whole(seed):
    rng = np.random.default_rng(seed)
    entries = [types.SimpleNamespace(label=int(y)) for y in rng.integers(0, 2, 300)]
    labels = [e.label for e in entries]
    assert split(entries, 0.2, 0.1, seed) == _ungrouped_split(labels, 0.2, 0.1, seed)
    groups = [i if i % 10 else i + 1 for i in range(len(entries))]  # each 10th image a copy of the next
    for i in range(0, len(entries) - 1, 10):
        entries[i] = entries[i + 1]  # a copy has its original's label
    names = split(entries, 0.2, 0.1, seed, groups)
    assert all(names[i] == names[i + 1] for i in range(0, len(entries) - 1, 10))
    for label in (0, 1):
        mine = [n for e, n in zip(entries, names) if e.label == label]
        for side, fraction in (("test", 0.2), ("val", 0.1)):
            assert abs(mine.count(side) - len(mine) * fraction) <= 1.5  # within a group of its share


def _duplicated_folder(tmp_path):
    """The generated folder plus copies: 4 byte-for-byte copies of cat images and 3 near copies (+1 on one
    channel); returns the groups as sets of sources."""
    photos = tmp_path / "photos"
    groups = []
    for k in range(4):
        original = photos / "cat" / f"{2 * k:03d}.png"
        shutil.copy(original, photos / "cat" / f"copy{k}.png")
        groups.append({f"cat/{original.name}", f"cat/copy{k}.png"})
    for k in range(3):
        original = photos / "non-cat" / f"{2 * k:03d}.png"
        pixels = np.asarray(Image.open(original)).copy()
        pixels[..., 1] = np.minimum(pixels[..., 1], 254) + 1
        Image.fromarray(pixels).save(photos / "non-cat" / f"near{k}.png")
        groups.append({f"non-cat/{original.name}", f"non-cat/near{k}.png"})
    return groups


def test_duplicates_never_straddle_the_split_and_the_audit_finds_no_leak(tmp_path, folder):
    groups = _duplicated_folder(tmp_path)
    out, report, _ = run(tmp_path, test_fraction=0.4, val_fraction=0.2)
    side = {}
    for s in ("train", "val", "test"):
        side.update({source.decode(): s for source in read(out / f"{s}.h5", s)["source"]})
    entries, _ = scan(tmp_path / "photos", load_config(tmp_path / "c.yaml").data)
    plain = dict(zip((e.rel for e in entries), split(entries, 0.4, 0.2, 0)))
    assert any(len({plain[f] for f in g}) > 1 for g in groups)  # without groups this seed splits a pair apart
    assert all(len({side[f] for f in g}) == 1 for g in groups)
    audit = report["audit"]
    assert audit["exact_duplicates"]["groups"] == 4 and audit["near_duplicates"]["pairs"] >= 3
    assert audit["exact_duplicates"]["leaks"] == 0 and audit["near_duplicates"]["leaks"] == 0
    assert report["duplicates"] == {"groups": 7, "images": 14, "kept_together": True, "test_root_leaks": 0,
                                    "listed": []}
    assert "7 groups of exact or near duplicates (14 images), each kept whole in one split." in summary(out, report)


def test_a_test_root_sharing_images_with_the_root_is_a_leak_warned_of_and_refused_by_strict(tmp_path, folder):
    held_out = tmp_path / "held-out"
    make_folder(held_out, counts=(("cat", 2), ("non-cat", 3)), seed=5)
    shutil.copy(tmp_path / "photos" / "cat" / "004.png", held_out / "cat" / "copied.png")
    config = load_config(write_config(tmp_path / "c.yaml", tmp_path / "photos", test_root=str(held_out)))
    said = []
    _, report, _ = prepare(config, workers=1, log=said.append)
    warning = (f"warning: {held_out}: 1 images of data.test_root are also in data.root (exact or near duplicates), "
               f"so the test score is flattered: {held_out / 'cat/copied.png'} = {tmp_path / 'photos/cat/004.png'}")
    assert warning in said
    assert report["duplicates"]["test_root_leaks"] == 1 and report["audit"]["exact_duplicates"]["leaks"] == 1
    said.clear()
    prepare(config, workers=1, log=said.append)  # up to date: still said
    assert warning in said
    with pytest.raises(PipelineError, match="copied.png = .*004.png; --strict refuses a test set that leaks"):
        prepare(config, workers=1, strict=True)
    with pytest.raises(PipelineError, match="--strict refuses a test set that leaks"):
        prepare(config, workers=1, strict=True, force=True)
