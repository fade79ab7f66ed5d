"""docs/python.md's examples run as the guide's do (tests/test_guide.py), in order, in a folder holding what
the page says it holds: the lesson's run in runs/lesson and photos (real course test images) in my-photos/."""
import h5py
import pytest
from PIL import Image

from tests.conftest import ROOT, run_python, train_cli
from tests.test_guide import examples, matches

PAGE = ROOT / "docs" / "python.md"
EXAMPLES = examples(PAGE.read_text(encoding="utf-8"), "python.md")
PHOTOS = {"IMG_0001.png": 1, "IMG_0002.png": 5, "cat/IMG_0003.png": 0, "cat/IMG_0004.png": 2,
          "non-cat/IMG_0005.png": 5, "non-cat/IMG_0006.png": 6}  # file -> index in the course's test set


@pytest.fixture(scope="module")
def folder(course_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    train_cli(course_dir, folder / "runs" / "lesson")
    with h5py.File(course_dir / "test_catvnoncat.h5") as f:
        x = f["test_set_x"][:]
    for name, index in PHOTOS.items():
        (folder / "my-photos" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[index]).save(folder / "my-photos" / name)
    return folder


def test_the_page_has_the_examples_the_issue_asks_for():
    text = PAGE.read_text(encoding="utf-8")
    for call in ("LogisticRegression(", "cross_val_score(", "GridSearchCV(", "load_run(", "load_images(",
                 "load_folder(", ".save(", "report_html()"):
        assert any(call in p.values[1] for p in EXAMPLES), call
    assert "--model my-model.npz" in text


@pytest.mark.parametrize("kind, code, expected", EXAMPLES)
def test_example_prints_what_the_page_shows(kind, code, expected, folder, course_dir):
    assert expected is not None, "a ```python block must be followed by a ```text block with what it prints"
    args = ["-c", code] if kind == "python" else code[len("$ python "):].split()
    result = run_python(*args, cwd=folder, env={"CATVNONCAT_DIR": str(course_dir)})
    assert result.returncode == 0, result.stderr
    assert matches(expected, result.stdout), f"it printed:\n{result.stdout}\nthe page shows:\n{expected}"
