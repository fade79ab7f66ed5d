"""Folders that cannot be walked: a subfolder that cannot be listed (mode 000, with root's override of file
permissions dropped: see conftest.unprivileged) and a symlink back to a folder above, inside a class folder.
`prepare` skips each with its reason and goes on, `--strict` refuses it, and `predict` on a folder names every
folder and file it could not read."""
import json

import pytest
from PIL import Image

from tests.conftest import run_cli, run_python, unprivileged
from tests.imagefolders import make_folder, write_config


@pytest.fixture
def photos(tmp_path):
    """A folder dataset with, inside cat/, a locked subfolder holding an image and a symlink loop."""
    make_folder(tmp_path / "photos", counts=(("cat", 8), ("non-cat", 8)))
    locked = tmp_path / "photos" / "cat" / "locked"
    locked.mkdir()
    Image.new("RGB", (8, 8), "red").save(locked / "hidden.png")
    (tmp_path / "photos" / "cat" / "again").symlink_to(tmp_path / "photos" / "cat")
    locked.chmod(0)
    write_config(tmp_path / "c.yaml", tmp_path / "photos")
    yield tmp_path / "photos"
    locked.chmod(0o755)  # so that pytest can remove it


def test_prepare_skips_an_unreadable_folder_and_a_symlink_loop_naming_each(tmp_path, photos):
    result = run_python("-m", "pipeline", "prepare", "--config", "c.yaml", "--workers", "2", cwd=tmp_path,
                        wrapper=unprivileged())
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "skipped 2 files:\n  cat/again: symlink loop (it leads back to a folder above it)\n" \
           "  cat/locked: unreadable folder (Permission denied)\n" in result.stdout
    report = json.loads((tmp_path / "data" / "processed" / "photos" / "prepare_report.json").read_text())
    assert report["skipped"] == [{"file": "cat/again", "reason": "symlink loop (it leads back to a folder above it)"},
                                 {"file": "cat/locked", "reason": "unreadable folder (Permission denied)"}]
    assert sum(sum(c.values()) for c in report["counts"].values()) == 16


def test_strict_refuses_an_unreadable_folder_in_one_line(tmp_path, photos):
    result = run_python("-m", "pipeline", "prepare", "--config", "c.yaml", "--strict", cwd=tmp_path,
                        wrapper=unprivileged())
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: {photos / 'cat' / 'again'}: symlink loop (it leads back to a folder above " \
                            "it); --strict refuses any skipped file\n"
    assert not any((tmp_path / "data" / "processed").iterdir())


def test_predict_on_a_folder_names_every_folder_and_file_it_could_not_read(tmp_path, photos):
    from tests.test_hostile_inputs import small_model
    (photos / "non-cat" / "000.png").chmod(0)
    result = run_python("-m", "pipeline", "predict", "--model", small_model(tmp_path / "m.npz"), photos,
                        wrapper=unprivileged())
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {photos / 'cat' / 'again'}: symlink loop (it leads back to a folder above it)",
                      f"error: {photos / 'cat' / 'locked'}: unreadable folder (Permission denied)",
                      f"error: {photos / 'non-cat' / '000.png'}: cannot read (Permission denied)"], result.stderr
    assert len(result.stdout.splitlines()) == 15  # every other image predicted
    assert run_cli("predict", "--model", tmp_path / "m.npz", photos / "cat" / "000.png").returncode == 0
