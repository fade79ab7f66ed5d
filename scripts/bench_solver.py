"""Benchmark rows of train.solver lbfgs against scikit-learn, each a whole python process on the same file:

- `python -m pipeline train` with solver lbfgs at a fixed l2, against a process that loads the file and fits
  LogisticRegression(C=1/l2, tol=1e-6): wall time, final objective (J = mean cross-entropy + l2/(2m) ||w||^2,
  the cost both minimise up to a factor), iterations;
- `train` with l2 auto (the validation path of pipeline/l2path.py) against LogisticRegressionCV on the same grid.

The data: about 1,500 64x64 images made from the course's 259 (flipped, shifted in brightness, with noise), in the
course schema, in a temporary folder. Run alone with `python scripts/bench.py --only solver` (docs/speed.md).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipeline.l2path import grid  # noqa: E402

M, L2 = 1500, 10.0  # images; the fixed l2 of the first rows (C = 0.1)

SKLEARN = """
import json, sys, h5py, numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
with h5py.File(sys.argv[1] + "/train_catvnoncat.h5", "r") as f:
    x, y = f["train_set_x"][()], f["train_set_y"][()]
X = x.reshape(len(x), -1) / 255  # (m, n_x): scikit-learn's rows are examples
if sys.argv[2] == "fixed":
    l2 = float(sys.argv[3])
    model = LogisticRegression(C=1 / l2, tol=1e-6, max_iter=10000).fit(X, y)
    w, b = model.coef_[0], model.intercept_[0]
    z = X @ w + b
    J = float(np.mean(np.logaddexp(0, z) - y * z) + l2 / (2 * len(y)) * w @ w)
    print(json.dumps({"objective": J, "iterations": int(model.n_iter_[0])}))
else:
    Cs = [1 / float(c) for c in sys.argv[3].split(",")]
    model = LogisticRegressionCV(Cs=Cs, cv=5, max_iter=10000).fit(X, y)
    print(json.dumps({"l2": 1 / float(model.C_[0]), "iterations": int(model.n_iter_.max())}))
"""


def make_data(folder, course_dir, m=M, seed=0):
    """train_catvnoncat.h5 of m images from the course's training and test images, each flipped or not, its
    brightness shifted and noise added; test_catvnoncat.h5 is the course's own test file."""
    rng = np.random.default_rng(seed)
    with h5py.File(Path(course_dir) / "train_catvnoncat.h5", "r") as f:
        x, y, classes = f["train_set_x"][()], f["train_set_y"][()], f["list_classes"][()]
    with h5py.File(Path(course_dir) / "test_catvnoncat.h5", "r") as f:
        tx, ty = f["test_set_x"][()], f["test_set_y"][()]
    pick = rng.integers(0, len(x), m)
    images = x[pick].astype(np.int16)  # (m, 64, 64, 3)
    flip = rng.random(m) < 0.5
    images[flip] = images[flip, :, ::-1]
    images += rng.integers(-20, 21, (m, 1, 1, 1), dtype=np.int16) + rng.integers(-8, 9, images.shape, dtype=np.int16)
    for name, split, xs, ys in (("train_catvnoncat.h5", "train", np.clip(images, 0, 255).astype(np.uint8), y[pick]),
                                ("test_catvnoncat.h5", "test", tx, ty)):
        with h5py.File(Path(folder) / name, "w") as f:
            f.create_dataset(f"{split}_set_x", data=xs)
            f.create_dataset(f"{split}_set_y", data=ys)
            f.create_dataset("list_classes", data=classes)


def timed(args):
    """(wall seconds, stdout) of a python process run with args."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"bench: {' '.join(map(str, args))} failed: {result.stderr}")
    return seconds, result.stdout


def train(folder, run, *sets):
    """A whole `train` process on folder's files: (seconds, final objective, iterations, run.json's training)."""
    args = ["-m", "pipeline", "train", "--quiet", "--run-dir", run, "--set", f"data.dir={folder}",
            "--set", "train.solver=lbfgs", "--set", "train.num_iterations=1000"]
    for s in sets:
        args += ["--set", s]
    seconds, _ = timed(args)
    training = json.loads((Path(run) / "run.json").read_text())["training"]
    last = (Path(run) / "costs.csv").read_text().splitlines()[-1].split(",")
    return seconds, float(last[1]), training["iterations"], training


def print_table(course_dir):
    """Print the rows (about a minute on the 2-core machine of docs/speed.md)."""
    with tempfile.TemporaryDirectory() as folder:
        make_data(folder, course_dir)
        ours, J, iterations, training = train(folder, Path(folder) / "fixed", f"train.l2={L2}")
        theirs, out = timed(["-c", SKLEARN, folder, "fixed", str(L2)])
        sk = json.loads(out)
        print(f"{M} images of 64x64x3, l2 = {L2} (C = {1 / L2:g}); whole processes, wall time\n")
        print("| process | wall time | final objective | iterations |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| `train`, solver lbfgs (tol {training['tol']:g}, {training['passes']} passes) | {ours:.2f} s | "
              f"{J:.10f} | {iterations} |")
        print(f"| scikit-learn LogisticRegression(C=1/l2, tol=1e-6) | {theirs:.2f} s | {sk['objective']:.10f} | "
              f"{sk['iterations']} |")
        gap = (J - sk["objective"]) / sk["objective"]
        print(f"\nobjective: lbfgs - scikit-learn = {gap:+.2e} relative (target within 1e-6: "
              f"{'met' if abs(gap) <= 1e-6 else 'NOT met'}); time {ours / theirs:.2f} x scikit-learn's (target <= 1: "
              f"{'met' if ours <= theirs else 'NOT met'})\n")
        auto, _, _, training = train(folder, Path(folder) / "auto", "train.l2=auto", "data.val_fraction=0.2")
        m_train = int(round(M * 0.8))
        cv, out = timed(["-c", SKLEARN, folder, "cv", ",".join(f"{v:g}" for v in grid(m_train))])
        path = training["l2_path"]
        print("| process | wall time | l2 chosen | fits |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| `train`, l2 auto (validation split 0.2) | {auto:.2f} s | {training['l2']:.4g} | {len(path)} |")
        print(f"| scikit-learn LogisticRegressionCV(Cs = the same 15 values, cv=5) | {cv:.2f} s | "
              f"{json.loads(out)['l2']:.4g} | 40 |")
        met = "met" if auto <= cv / 5 else "NOT met"
        print(f"\ntime {auto / cv:.2f} x LogisticRegressionCV's (target <= 0.2: {met})")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default="data/raw", help="folder with the course's HDF5 files")
    print_table(parser.parse_args().data)
