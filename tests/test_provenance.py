"""run.json's code version from one real git process, and what a `train` process does not import."""
import subprocess

from pipeline.provenance import git_state
from tests.conftest import run_python


def git(folder, *args):
    return subprocess.run(["git", "-C", folder, "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_git_state_names_the_commit_and_whether_anything_differs_from_it(tmp_path):
    assert git_state(tmp_path) == (None, None)  # not a checkout
    git(tmp_path, "init", "-q")
    assert git_state(tmp_path) == (None, None)  # a checkout without a commit
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "a")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "sub").mkdir()
    assert git_state(tmp_path / "sub") == (head, False)  # any folder of the checkout
    (tmp_path / "new.py").write_text("")  # an untracked file is a difference
    assert git_state(tmp_path) == (head, True)
    (tmp_path / "new.py").unlink()
    (tmp_path / "a.py").write_text("x = 2\n")  # so is a changed one
    assert git_state(tmp_path) == (head, True)


def test_train_imports_no_module_it_does_not_use(course_dir, tmp_path):
    """A short command's time is mostly imports: no progress bar module with --quiet, no Pillow file plugins
    (PNGs are encoded by pipeline.files), no difflib (only a misspelt config name needs it)."""
    code = "import sys; from pipeline.cli import main; main(sys.argv[1:]); print(' '.join(sorted(sys.modules)))"
    result = run_python("-c", code, "train", "--quiet", "--set", f"data.dir={course_dir}", "--run-dir",
                        tmp_path / "run", check=0)
    modules = set(result.stdout.splitlines()[-1].split())
    assert "pipeline.report" in modules and (tmp_path / "run" / "misclassified" / "grid.png").is_file()
    assert not modules & {"tqdm", "difflib", "PIL.PngImagePlugin", "PIL.JpegImagePlugin", "PIL.BmpImagePlugin"}
