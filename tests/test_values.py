"""Values at the door: integers longer than any config value refused before conversion (Python's int() gives a
traceback past 4300 digits), control characters refused in data.name, class names and run names, a model's
classes as text only. Each refusal is one `error:` line naming the file or key, through the real CLI."""
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import run_cli
from tests.imagefolders import make_folder
from tests.test_hostile_inputs import course_files, small_model

HUGE = "9" * 4400  # over Python's int-string limit of 4300 digits


def refused(result, *words):
    """The one error line of a failed run, which must hold each of words."""
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    line, = result.stderr.splitlines()
    assert line.startswith("error: ") and all(w in line for w in words), line
    return line


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "0x" + "f" * 4000, "1_000_000_000_000_000_000_000_000"])
def test_an_integer_longer_than_any_config_value_is_refused_in_a_file(tmp_path, value):
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  seed: {value}\n")
    line = refused(run_cli("train", "--config", config, cwd=tmp_path), f"{config}: the integer ",
                   "is beyond any config value", "at line 2")
    assert len(line) < 200


def test_an_integer_longer_than_any_config_value_is_refused_in_a_set_and_a_sweep(tmp_path):
    line = refused(run_cli("train", "--set", f"train.num_iterations={HUGE}", cwd=tmp_path),
                   "--set train.num_iterations=999", "(4400 characters) is beyond any config value")
    assert len(line) < 300
    config = tmp_path / "s.yaml"
    config.write_text(f"sweep:\n  train.seed: [1, {HUGE}]\n")
    refused(run_cli("sweep", "--config", config, cwd=tmp_path), f"{config}: the integer", "at line 2")


def test_an_integer_within_bounds_is_still_read(tmp_path):
    result = run_cli("train", "--set", "train.seed=9223372036854775807", "--set", "train.num_iterations=x",
                     cwd=tmp_path)  # the seed passes; the next key is the one refused
    refused(result, "train.num_iterations must be a whole number")
    refused(run_cli("train", "--set", "train.seed=9223372036854775808", cwd=tmp_path),
            "is beyond any config value (at most 9223372036854775807)")


@pytest.mark.parametrize("key, value", [("data.name", "a\nb"), ("data.name", "a\x1b[2Jb"),
                                        ("data.positive", "cat\x07"), ("data.negative", "non\rcat")])
def test_control_characters_in_dataset_and_class_names_are_refused(tmp_path, key, value):
    config = tmp_path / "c.yaml"
    section, name = key.split(".")
    config.write_text(yaml.safe_dump({"data": {"source": "folder", "root": str(tmp_path), name: value}}))
    refused(run_cli("prepare", "--config", config, cwd=tmp_path), f"{config}: {key} must be a plain folder name"
            if key == "data.name" else f"{config}: {key} must be plain folder names", "control characters")
    assert not (tmp_path / "data").exists()


def test_a_root_folder_whose_name_holds_a_newline_needs_data_name(tmp_path):
    root = tmp_path / "photos\nerror: forged"
    make_folder(root)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "folder", "root": str(root), "image_size": 8}}))
    refused(run_cli("prepare", "--config", config, cwd=tmp_path),
            "photos\\nerror: forged: its folder name holds control characters; set data.name")
    config.write_text(yaml.safe_dump({"data": {"source": "folder", "root": str(root), "image_size": 8,
                                               "name": "photos"}}))
    assert run_cli("prepare", "--config", config, cwd=tmp_path).returncode == 0
    assert [p.name for p in (tmp_path / "data" / "processed").iterdir()] == ["photos"]


def test_control_characters_in_a_run_name_are_refused(tmp_path):
    data = course_files(tmp_path / "data")
    refused(run_cli("train", "--set", f"data.dir={data}", "--run-dir", tmp_path / "run\nerror: forged",
                    cwd=tmp_path), "run\\nerror: forged: refused: --run-dir holds control characters")
    config = tmp_path / "lesson\x1b[31m.yaml"
    config.write_text(f"data:\n  dir: {data}\ntrain:\n  num_iterations: 1\n")
    refused(run_cli("train", "--config", config, cwd=tmp_path),
            "lesson\\x1b[31m: refused: the run's name (its config file's name) holds control characters")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "lesson\x1b[31m.yaml"]


def test_a_model_whose_classes_are_bytes_is_refused(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    model = small_model(tmp_path / "m.npz")
    np.savez(model, **{**dict(np.load(model)), "classes": np.array([b"non-cat", b"cat"])})
    result = run_cli("predict", "--model", model, tmp_path / "ok.png")
    line = refused(result, "m.npz: classes must hold 2 names as text, got |S7 of shape (2,)")
    assert "b'cat'" not in result.stdout + line and result.stdout == ""
