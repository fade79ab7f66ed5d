"""The fast ingest path: JPEG draft decoding, the prepared HDF5 layout, and predict seeing prepare's pixels."""
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.config import load_config
from pipeline.h5write import chunk_rows
from pipeline.images import load_image, reduce_jpeg
from pipeline.prepare import prepare
from tests.conftest import ROOT, run_cli
from tests.imagefolders import write_config

DOC = (ROOT / "docs" / "ingest.md").read_text(encoding="utf-8")
# the bounds docs/ingest.md states for a draft decode against a full decode, 64x64 pixels in grey levels
MEAN_BOUND = float(re.search(r"mean difference of at most ([0-9.]+) grey levels", DOC).group(1))
MAX_BOUND = int(re.search(r"no pixel differs by more than ([0-9]+)", DOC).group(1))


def photo(path, width, height, seed, orientation=None):
    """A photo-like JPEG (quality 88): smooth colour fields with sensor-like grain, as the benchmark's."""
    rng = np.random.default_rng(seed)
    fields = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                     Image.Resampling.BICUBIC)
    pixels = np.asarray(fields, dtype=np.float32) + rng.standard_normal((height, width, 3), np.float32) * 8
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=88, exif=exif)
    return Path(path)


@pytest.mark.parametrize("width, height, decoded", [(500, 375, (125, 94)),  # 1/8 would be 63 px: too small
                                                    (4000, 3000, (500, 375)),  # a phone photo: 1/8
                                                    (100, 80, (100, 80))])  # under twice the target: full size
def test_a_jpeg_is_decoded_at_the_smallest_scale_that_keeps_the_target_size(tmp_path, width, height, decoded):
    Image.new("RGB", (width, height), "olive").save(tmp_path / "p.jpg")
    with Image.open(tmp_path / "p.jpg") as image:
        reduce_jpeg(image, (64, 64))
        image.load()
        assert image.size == decoded


@pytest.mark.parametrize("width, height, orientation", [(500, 375, None), (375, 500, 6), (2000, 1500, None)])
def test_a_draft_decode_stays_within_the_documented_difference_of_a_full_decode(tmp_path, width, height,
                                                                                orientation):
    paths = [photo(tmp_path / f"{seed}.jpg", width, height, seed, orientation) for seed in range(4)]
    for fit in ("squash", "crop", "pad"):
        diffs = np.stack([np.abs(load_image(path, (64, 64), fit).astype(int)
                                 - load_image(path, (64, 64), fit, draft=False)) for path in paths])
        assert diffs.max() > 0  # the draft path was taken: a full decode would match exactly
        assert diffs.mean() <= MEAN_BOUND and diffs.max() <= MAX_BOUND, (fit, diffs.mean(), diffs.max())


def test_prepared_images_are_stored_uncompressed_in_chunks_of_whole_examples_as_documented(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i in range(6):
        photo(tmp_path / "photos" / ("cat" if i % 2 else "non-cat") / f"{i}.jpg", 120, 90, i)
    out, _, _ = prepare(load_config(write_config(tmp_path / "c.yaml", tmp_path / "photos", image_size=64)), workers=1)
    rows = chunk_rows((64, 64))
    assert f"chunks of {rows} examples" in DOC and "no compression filter" in DOC
    for split in ("train", "test"):
        with h5py.File(out / f"{split}.h5", "r") as f:
            x = f[f"{split}_set_x"]
            assert x.chunks == (rows, 64, 64, 3) and x.compression is None and not x._filters


def test_predict_sees_the_pixels_prepare_stored(tmp_path):
    """Trained on a prepared folder of drafted JPEGs (some rotated by EXIF), predict's --save-input images
    are exactly the prepared ones."""
    for i in range(8):
        photo(tmp_path / "photos" / ("cat" if i % 2 else "non-cat") / f"p{i}.jpg", 600, 450, i, 6 if i % 3 else None)
    config = write_config(tmp_path / "c.yaml", tmp_path / "photos", image_size=32, test_fraction=0.25)
    run_cli("train", "--config", config, "--workers", "2", "--run-dir", tmp_path / "run", cwd=tmp_path, check=0)
    run_cli("predict", "--model", tmp_path / "run", tmp_path / "photos", "--save-input", tmp_path / "seen",
            cwd=tmp_path, check=0)
    seen = {p.name.split("_", 1)[1]: np.asarray(Image.open(p)) for p in (tmp_path / "seen").iterdir()}
    prepared = {}
    for split in ("train", "test"):
        with h5py.File(tmp_path / "data" / "processed" / "photos" / f"{split}.h5", "r") as f:
            for x, source in zip(f[f"{split}_set_x"], f[f"{split}_set_source"]):
                prepared[Path(source.decode()).stem + ".png"] = x
    assert sorted(seen) == sorted(prepared) and len(seen) == 8
    for name, pixels in seen.items():
        np.testing.assert_array_equal(pixels, prepared[name])
