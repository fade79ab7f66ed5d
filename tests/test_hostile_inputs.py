"""Hostile inputs built for real (crafted HDF5 files, npz zips, EPS files named .jpg, YAML bombs, FIFOs,
/dev/zero, names with newlines and `..`), given to the real CLI: one `error:` line with its words, exit 1,
no traceback, nothing written outside the run or dataset folder. See docs/security.md."""
import io
import json
import os
import stat
import struct
import zipfile
import zlib

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.artifacts import Model, load_model, save_model
from pipeline.config import CONFIG_MAX_BYTES, load_config
from pipeline.features import Scaler
from pipeline.images import load_image
from pipeline.names import inside, printable, safe_name
from tests.conftest import ROOT, run_cli, run_python
from tests.imagefolders import make_folder, write_config

EMPTY = np.zeros((0, 1))


def refused(result, *words):
    """The run failed with exit 1 and exactly one line on stderr, `error: ...` holding each of words."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def tree(folder):
    """Every path under folder (links not followed), to see what a run added."""
    return {os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files}


def write_split(path, split, x, y, classes=(b"non-cat", b"cat")):
    with h5py.File(path, "w") as f:
        f[f"{split}_set_x"] = x
        f[f"{split}_set_y"] = y
        f["list_classes"] = np.array(classes)
    return path


def course_files(folder, m=24, side=4, train_classes=(b"non-cat", b"cat"), test_classes=None):
    """Small course-schema files: random images whose labels a neuron cannot fully learn (so some are wrong)."""
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    for split, classes in (("train", train_classes), ("test", test_classes or train_classes)):
        x = rng.integers(0, 256, (m, side, side, 3), dtype=np.uint8)
        write_split(folder / f"{split}_catvnoncat.h5", split, x, np.arange(m) % 2, classes)
    return folder


def train(data_dir, run_dir, *sets, cwd):
    args = ["train", "--config", ROOT / "configs" / "default.yaml", "--set", f"data.dir={data_dir}", "--run-dir", run_dir, "--set", "train.num_iterations=5",
            "--set", "train.print_every=5"]
    for s in sets:
        args += ["--set", s]
    return run_cli(*args, cwd=cwd)


# configs ---------------------------------------------------------------------------------------------------

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
train:
  learning_rate: *d
"""


def _config(tmp_path, kind):
    """The path of a hostile config of the given kind."""
    path = tmp_path / "c.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block for ever
    elif kind == "device":
        return "/dev/zero"  # reading it never ends
    elif kind == "folder":
        path.mkdir()
    elif kind == "link to device":
        path.symlink_to("/dev/zero")
    elif kind == "huge":
        path.write_text("# padding\n" * (CONFIG_MAX_BYTES // 10 + 1))
    else:
        path.write_text({"bomb": BOMB,
                         "duplicate section": "train:\n  learning_rate: 0.1\nevaluate:\n  enlarge: 2\n"
                                              "train:\n  num_iterations: 5\n",
                         "duplicate key": "train:\n  learning_rate: 0.1\n  learning_rate: 0.2\n",
                         "deep": "train: " + "[" * 500 + "]" * 500 + "\n",
                         "long value": "train:\n  learning_rate: " + "x" * 100_000 + "\n",
                         "image size": "data:\n  image_size: 100000\n",
                         "enlarge": "evaluate:\n  enlarge: 100000\n",
                         "grid": "sweep:\n" + "".join(f"  {k}: {list(range(1, 12))}\n" for k in
                                                      ("train.num_iterations", "train.print_every", "train.seed")),
                         "absolute class": "data:\n  source: folder\n  root: photos\n  positive: /etc\n",
                         "dotted class": "data:\n  negative: ../..\n",
                         "fractions": "data:\n  source: folder\n  root: photos\n  test_fraction: 0.6\n"
                                      "  val_fraction: 0.5\n"}[kind])
    return path


@pytest.mark.parametrize("kind, command, words", [
    ("bomb", "train", ["c.yaml: aliases (*name) are not allowed in a config at line 2"]),
    ("duplicate section", "train", ["c.yaml: duplicate key 'train' at line 5"]),
    ("duplicate key", "train", ["c.yaml: duplicate key 'learning_rate' at line 3"]),
    ("deep", "train", ["c.yaml: nested deeper than 20 levels at line 1"]),
    ("fifo", "train", ["c.yaml: not a regular file"]),
    ("device", "train", ["/dev/zero: not a regular file"]),
    ("link to device", "train", ["c.yaml: not a regular file"]),
    ("folder", "train", ["c.yaml: not a regular file"]),
    ("huge", "train", [f"c.yaml: over the limit of {CONFIG_MAX_BYTES} bytes for a config file"]),
    ("long value", "train", ["train.learning_rate must be auto or a number, got 'xxxxxxxx", "..."]),
    ("image size", "train", ["data.image_size must be <= 1024, got 100000"]),
    ("enlarge", "train", ["evaluate.enlarge must be <= 16, got 100000"]),
    ("grid", "sweep", ["c.yaml: sweep: the grid has 1331 points, over the limit of 1000 runs"]),
    ("absolute class", "prepare", ["data.positive must be plain folder names inside data.root", "got '/etc'"]),
    ("dotted class", "train", ["data.negative must be plain folder names inside data.root"]),
    ("fractions", "prepare", ["data.test_fraction + data.val_fraction must be < 1", "got 0.6 + 0.5"]),
])
def test_a_hostile_config_gets_one_short_line(tmp_path, kind, command, words):
    path = _config(tmp_path, kind)
    before = tree(tmp_path)
    result = run_cli(command, "--config", path, cwd=tmp_path)
    line = refused(result, *words)
    assert len(line) < 300  # a value is quoted by a short prefix, never whole
    assert tree(tmp_path) == before


def test_a_test_fraction_near_1_leaves_no_training_images_and_says_so(tmp_path):
    make_folder(tmp_path / "photos", counts=(("cat", 4), ("non-cat", 4)))
    write_config(tmp_path / "c.yaml", "photos", test_fraction=0.95)
    result = run_cli("prepare", "--config", "c.yaml", "--workers", "1", cwd=tmp_path)
    refused(result, "photos: no usable training images of class 'non-cat'", "data.test_fraction is 0.95")
    assert sorted(os.listdir(tmp_path)) == ["c.yaml", "data", "photos"] and os.listdir(tmp_path / "data/processed") == []


def test_an_alias_in_a_set_value_is_not_expanded():
    result = run_cli("train", "--set", "train.learning_rate=[&a [1, 2], *a, *a]")
    refused(result, "--set train.learning_rate=[&a [1, 2], *a, *a]: train.learning_rate must be auto or a number")


def test_a_base_that_is_some_other_file_is_refused_without_echoing_it(tmp_path):
    (tmp_path / "netrc").write_text("password: hunter2-secret\nmachine: example.org\n")
    (tmp_path / "c.yaml").write_text("base: netrc\n")
    line = refused(run_cli("train", "--config", tmp_path / "c.yaml"),
                   "netrc: not a config file: none of its top-level keys is a section")
    assert "hunter2" not in line and "password" not in line


def test_a_typo_in_a_section_still_gets_its_suggestion(tmp_path):
    (tmp_path / "c.yaml").write_text("trian:\n  learning_rate: 0.1\n")
    with pytest.raises(PipelineError, match=r"unknown section 'trian' \(did you mean 'train'\?\)"):
        load_config(tmp_path / "c.yaml")


# images ----------------------------------------------------------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n"


def fake_ghostscript(tmp_path):
    """A `gs` first on PATH that leaves a mark when anything runs it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {tmp_path / 'gs-was-run'}\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def small_model(path, classes=("non-cat", "cat"), **arrays):
    """A valid model of 4x4 images, or with some of its arrays replaced (written as np.savez would)."""
    save_model(path, Model(w=np.full((48, 1), 0.01), b=0.0, image_shape=(4, 4, 3),
                           scaler=Scaler("divide255", EMPTY, EMPTY), classes=classes, threshold=0.5))
    if arrays:
        np.savez(path, **{**dict(np.load(path)), **arrays})
    return path


RED = 1 / (1 + np.exp(-0.01 * 16))  # small_model's probability for a red picture: 16 pixels of 255/255 in red


def test_an_eps_named_jpg_is_refused_before_ghostscript_runs(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(EPS)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    result = run_python("-m", "pipeline", "predict", "--model", small_model(tmp_path / "m.npz"),
                        tmp_path / "photo.jpg", tmp_path / "ok.png", env=fake_ghostscript(tmp_path))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'photo.jpg'}: not a supported image format (EPS)" in result.stderr.splitlines()
    assert not (tmp_path / "gs-was-run").exists()


def test_prepare_skips_an_eps_without_running_ghostscript(tmp_path):
    make_folder(tmp_path / "photos", counts=(("cat", 4), ("non-cat", 4)))
    (tmp_path / "photos" / "cat" / "evil.jpg").write_bytes(EPS)
    write_config(tmp_path / "c.yaml", "photos", min_size=2)  # min_size: the header is read in prepare too
    result = run_python("-m", "pipeline", "prepare", "--config", "c.yaml", "--workers", "1", cwd=tmp_path,
                        env=fake_ghostscript(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "cat/evil.jpg: not a supported image format (EPS)" in result.stdout
    assert not (tmp_path / "gs-was-run").exists()


def _image(tmp_path, kind):
    path = tmp_path / "image.jpg"  # every one named .jpg: the content decides
    if kind == "PDF":
        path.write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\n")
    elif kind == "PSD":  # Photoshop's signature and version, then a header Pillow's PSD reader would parse
        path.write_bytes(b"8BPS\x00\x01" + bytes(20))
    elif kind == "float":
        Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(path, format="TIFF")
    else:
        Image.new("RGB", (4, 4)).save(path, format=kind)
    return path


@pytest.mark.parametrize("kind, message", [
    ("PDF", "not a supported image format (PDF)"),
    ("SGI", "not a supported image format (SGI)"),
    ("PCX", "not a supported image format (PCX)"),
    ("PSD", "not a supported image format (PSD)"),
    ("float", "float pixels (mode F) are not supported; save it with 8 or 16 bits per channel"),
])
def test_formats_outside_the_allow_list_are_refused_by_name(tmp_path, kind, message):
    path = _image(tmp_path, kind)
    with pytest.raises(PipelineError, match=rf"^{path}: {message}$".replace("(", r"\(").replace(")", r"\)")):
        load_image(path, (4, 4))


def test_32_bit_integer_pixels_follow_the_16_bit_rule(tmp_path):
    values = np.array([[-5, 0, 25700, 65535, 70000, 2**31 - 1]], dtype=np.int32)  # (1, 6)
    Image.fromarray(values, "I").save(tmp_path / "i.tif")
    with Image.open(tmp_path / "i.tif") as image:
        assert image.mode == "I"
    pixels = load_image(tmp_path / "i.tif", (1, 6), resample="nearest")[0, :, 0]
    assert pixels.tolist() == [0, 0, 100, 255, 255, 255]  # /257, clipped to 0..255


# HDF5 files ------------------------------------------------------------------------------------------------

def _spoil(folder, kind):
    """Replace the course files in folder with a hostile variant."""
    train_h5, test_h5 = folder / "train_catvnoncat.h5", folder / "test_catvnoncat.h5"
    if kind == "soft link loop":
        with h5py.File(train_h5, "a") as f:
            del f["train_set_x"]
            f["train_set_x"] = h5py.SoftLink("/loop")
            f["loop"] = h5py.SoftLink("/train_set_x")
    elif kind == "dangling external link":
        with h5py.File(train_h5, "a") as f:
            del f["train_set_x"]
            f["train_set_x"] = h5py.ExternalLink("/nonexistent/other.h5", "/x")
    elif kind == "virtual dataset":
        layout = h5py.VirtualLayout(shape=(24, 4, 4, 3), dtype=np.uint8)
        layout[:] = h5py.VirtualSource(str(test_h5), "test_set_x", shape=(24, 4, 4, 3))
        with h5py.File(train_h5, "a") as f:
            del f["train_set_x"]
            f.create_virtual_dataset("train_set_x", layout)
    elif kind == "bomb":  # a few kB declaring 12 TB of pixels that were never written
        with h5py.File(test_h5, "a") as f:
            for key in ("test_set_x", "test_set_y"):
                del f[key]
            f.create_dataset("test_set_x", shape=(10**9, 64, 64, 3), dtype=np.uint8, chunks=(1, 64, 64, 3),
                             compression="gzip")
            f.create_dataset("test_set_y", shape=(10**9,), dtype=np.int64, chunks=(4096,), compression="gzip")
    elif kind == "streamed bomb":  # the training file, which training reads lazily: never-written examples
        with h5py.File(train_h5, "a") as f:
            del f["train_set_x"]
            f.create_dataset("train_set_x", shape=(24 * 10**6, 4, 4, 3), dtype=np.uint8, chunks=(24, 4, 4, 3),
                             compression="gzip")
            f["train_set_x"][:24] = 1  # the first chunk is there; the rest only declared
            y = np.arange(24 * 10**6) % 2
            del f["train_set_y"]
            f.create_dataset("train_set_y", data=y, chunks=(2**20,), compression="gzip")
    elif kind == "huge images":
        with h5py.File(test_h5, "a") as f:
            del f["test_set_x"]
            f.create_dataset("test_set_x", shape=(24, 5000, 5000, 3), dtype=np.uint8, chunks=(1, 64, 64, 3))
    elif kind == "newline class":
        course_files(folder, train_classes=(b"non-cat", b"cat\nerror: forged"))
    elif kind == "not utf-8":
        course_files(folder, train_classes=(b"non-cat", b"\xff\xfe"))
    elif kind == "same names":
        course_files(folder, train_classes=(b"cat", b"cat"))
    elif kind == "classes differ":
        course_files(folder, test_classes=(b"dog", b"cat"))


@pytest.mark.parametrize("kind, words", [
    ("soft link loop", ["train_catvnoncat.h5: 'train_set_x' is a soft link; links are not followed"]),
    ("dangling external link", ["train_catvnoncat.h5: 'train_set_x' is an external link"]),
    ("virtual dataset", ["train_catvnoncat.h5: 'train_set_x' reads its data from other files"]),
    ("bomb", ["test_catvnoncat.h5: 'test_set_x' declares (1000000000, 64, 64, 3) but the file does not hold that "
              "data (unwritten chunks); refused"]),
    ("streamed bomb", ["train_catvnoncat.h5: 'train_set_x' declares (24000000, 4, 4, 3) but the file does not "
                       "hold that data (unwritten chunks); refused"]),
    ("huge images", ["test_set_x holds images of 5000x5000 pixels, over the limit of 1024 on a side"]),
    ("newline class", ["list_classes: class name 'cat\\nerror: forged' refused: a class name must be 1 to 100"]),
    ("not utf-8", ["list_classes: class names must be UTF-8 text"]),
    ("same names", ["list_classes: the two classes have the same name 'cat'"]),
    ("classes differ", ["test_catvnoncat.h5: list_classes ['dog', 'cat'] differ from the training file's "
                        "['non-cat', 'cat']"]),
])
def test_a_hostile_hdf5_file_is_refused_in_one_line(tmp_path, kind, words):
    data = course_files(tmp_path / "data")
    _spoil(data, kind)
    before = tree(tmp_path)
    refused(train(data, tmp_path / "run", cwd=tmp_path), *words)
    assert tree(tmp_path) == before


def test_class_names_from_a_file_never_become_paths(tmp_path):
    """list_classes holding `..` and separators: the misclassified PNGs still land in misclassified/."""
    data = course_files(tmp_path / "data", train_classes=(b"../../../../escaped", b"/tmp/a/b"))
    result = train(data, tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    added = tree(tmp_path) - tree(tmp_path / "data") - {str(tmp_path / "data")}
    assert added and all(p.startswith(str(tmp_path / "run")) for p in added)
    pngs = [p for p in (tmp_path / "run" / "misclassified").iterdir() if p.name.startswith("test_")]
    assert pngs and all(p.is_file() for p in pngs)
    assert {p.name.split("_", 2)[2] for p in pngs} <= {"--------escaped_as_-tmp-a-b.png",
                                                        "-tmp-a-b_as_--------escaped.png"}
    assert "/tmp/a/b" in (tmp_path / "run" / "misclassified" / "index.csv").read_text()  # the name, as data


# model files -----------------------------------------------------------------------------------------------

def npy_bomb(path, member="w", shape=(10**9, 1)):
    """A model zip whose member declares a huge shape in its .npy header, with almost no data after it."""
    small_model(path)
    arrays = dict(np.load(path))
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                if name == member:
                    np.lib.format.write_array_header_1_0(f, header)
                    f.write(b"\0" * 4096)
                else:
                    np.lib.format.write_array(f, value)
    return path


def zip_bomb(path):
    """A model zip whose w.npy is 40 MB of zeros, compressed to about 40 kB."""
    arrays = dict(np.load(small_model(path)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                f.write(b"\0" * 40_000_000 if name == "w" else value.tobytes())
    assert os.path.getsize(path) < 200_000
    return path


@pytest.mark.parametrize("make, words", [
    (lambda p: small_model(p, w=np.full((48, 1), np.nan)), ["m.npz: w holds NaN or infinite values"]),
    (lambda p: small_model(p, b=np.float64(np.inf)), ["m.npz: b holds NaN or infinite values"]),
    (lambda p: small_model(p, threshold=np.float64(np.nan)), ["m.npz: threshold holds NaN or infinite values"]),
    (lambda p: small_model(p, threshold=np.float64(1.5)), ["m.npz: threshold must be between 0 and 1"]),
    (lambda p: small_model(p, scaling=np.str_("standardize"), mean=np.zeros((48, 1)), std=np.zeros((48, 1))),
     ["m.npz: std holds zero or negative values"]),
    (lambda p: small_model(p, scaling=np.str_("standardize"), mean=np.full((48, 1), np.inf),
                           std=np.ones((48, 1))), ["m.npz: mean holds NaN or infinite values"]),
    (lambda p: small_model(p, w=np.full((48, 1), 1e307)), ["m.npz: w and b are so large that the model's output"]),
    (lambda p: small_model(p, classes=np.array(["non-cat", "cat\x1b[2J"])), ["m.npz: classes: class name 'cat\\x1b[2J' refused"]),
    (lambda p: small_model(p, image_shape=np.array([100000, 100000, 3])), ["image_shape must be (h, w, 3) with h and w from 1 to 1024"]),
    (npy_bomb, ["m.npz: w declares shape (1000000000, 1) of float64, over the limit of"]),
    (zip_bomb, ["m.npz: w declares 40000000 bytes, over the limit of 25165824 bytes for an array of a model"]),
])
def test_a_hostile_model_is_refused_before_anything_is_predicted(tmp_path, make, words):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    result = run_cli("predict", "--json", "--model", make(tmp_path / "m.npz"), tmp_path / "ok.png")
    refused(result, *words)
    assert result.stdout == ""


def test_a_model_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "m.npz")
    refused(run_cli("predict", "--model", tmp_path / "m.npz", tmp_path / "x.png"), "m.npz: not a regular file")


def test_an_error_line_stays_short_whatever_the_input(tmp_path):
    line = refused(run_cli("train", "--set", "data.dir=" + "x" * 5000), "File name too long")
    assert "x" * 200 + "..." in line and len(line) <= len("error: ") + 2003


def test_predict_json_is_strict_json(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    result = run_cli("predict", "--json", "--model", small_model(tmp_path / "m.npz"), tmp_path / "ok.png")
    assert result.returncode == 0, result.stderr

    def no_constants(name):
        raise AssertionError(f"not JSON: {name}")
    assert json.loads(result.stdout, parse_constant=no_constants)[0]["label"] in ("cat", "non-cat")


# names in output -------------------------------------------------------------------------------------------

def test_a_file_name_cannot_forge_an_output_line(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png\nerror: forged.png")
    (tmp_path / "b\x1b[31m.png\nerror: forged").write_text("not a picture")
    result = run_cli("predict", "--model", small_model(tmp_path / "m.npz"), "--save-input", tmp_path / "seen",
                     tmp_path / "a.png\nerror: forged.png", tmp_path / "b\x1b[31m.png\nerror: forged")
    assert result.returncode == 3
    assert result.stdout.splitlines() == [f"{tmp_path}/a.png\\nerror: forged.png: cat (p={RED:.3f})"]
    assert result.stderr.splitlines() == [f"error: {tmp_path}/b\\x1b[31m.png\\nerror: forged: not an image (a text file)",
                                          "1 predicted, 1 failed (see above)"]
    assert os.listdir(tmp_path / "seen") == ["00000_a.png-error--forged.png"]


def bad_apng(path):
    """A PNG with an acTL chunk declaring 0 frames: Pillow warns "Invalid APNG" when it opens it."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    data, body = buf.getvalue(), struct.pack(">II", 0, 0)
    chunk = struct.pack(">I", len(body)) + b"acTL" + body + struct.pack(">I", zlib.crc32(b"acTL" + body))
    path.write_bytes(data[:33] + chunk + data[33:])  # after the signature (8) and IHDR (25)
    return path


def test_library_warnings_never_reach_the_terminal(tmp_path):
    path = bad_apng(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="Invalid APNG"):
        Image.open(path).close()
    result = run_cli("predict", "--model", small_model(tmp_path / "m.npz"), path)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"{path}: cat (p={RED:.3f})\n"


# the sanitiser itself --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, part", [
    ("cat", "cat"), ("non-cat", "non-cat"), ("../../etc", "----etc"), ("..", "-"), ("", "-"), ("a\nb", "a-b"),
    ("/abs/p", "-abs-p"), ("chat é 猫", "chat-é-猫"), ("x" * 300, "x" * 60), ("\u202eevil", "-evil"),
])
def test_safe_name_gives_one_plain_readable_file_name(tmp_path, name, part):
    assert safe_name(name) == part
    assert inside(tmp_path, f"t_{safe_name(name)}.png").parent == tmp_path


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "a/b.png", "..", ""])
def test_inside_refuses_a_name_that_leaves_its_folder(tmp_path, name):
    with pytest.raises(PipelineError, match="refused: a file name from data must stay inside"):
        inside(tmp_path, name)


def test_printable_escapes_control_characters_only():
    assert printable("ok: cat é 猫 (p=0.5)") == "ok: cat é 猫 (p=0.5)"
    assert printable("a\nerror: b\x1b[2J\u202e\udcff") == "a\\nerror: b\\x1b[2J\\u202e\\udcff"


def test_a_long_set_value_is_quoted_short_and_the_reason_shows():
    line = refused(run_cli("train", "--set", "train.learning_rate=" + "x" * 5000),
                   "train.learning_rate must be auto or a number")
    assert len(line) < 300 and line.startswith("error: --set train.learning_rate=" + "x" * 60)


def test_an_image_over_twice_the_pixel_limit_is_refused_in_the_same_words(tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")  # Pillow refuses to open it at all
    line = refused(run_cli("predict", "--model", small_model(tmp_path / "m.npz"), tmp_path / "huge.png"),
                   "huge.png: refused: 400000000 pixels is over the limit of")
    assert line.endswith("pixels, could be a decompression bomb")


def test_a_fifo_named_like_an_image_in_a_folder_is_named_not_skipped(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    os.mkfifo(folder / "a.jpg")
    Image.new("RGB", (8, 8), "red").save(folder / "ok.png")
    result = run_cli("predict", "--model", small_model(tmp_path / "m.npz"), folder)
    assert result.returncode == 3 and f"error: {folder / 'a.jpg'}: not a regular file" in result.stderr
    assert result.stdout.startswith(f"{folder / 'ok.png'}: ")
