"""Benchmark: the seed's for-loop, the lesson's vectorised loop and this pipeline's solvers on the course data,
then scaling on generated 64x64x3 datasets and the notes' vectorisation demo. Every row is measured in this run.

    python scripts/bench.py [--data data/raw] [--repeat 3] [--sizes 1000,10000,100000]
"""
import argparse
import dataclasses
import math
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
from pipeline import data, streaming  # noqa: E402
from pipeline.config import TrainConfig  # noqa: E402
from pipeline.features import features, fit_scaler  # noqa: E402
from pipeline.model import cross_entropy  # noqa: E402
from pipeline.train import fit  # noqa: E402

ITERATIONS, RATE = 2000, 0.005


def seed_loop(w, b, X, Y, num_iterations):
    """Section 6 of the notes: a for loop over the m examples and, inside, over the n_x features."""
    n_x, m = len(w), len(X)  # X: m lists of n_x pixels
    for _ in range(num_iterations):
        J, dw, db = 0.0, [0.0] * n_x, 0.0
        for i in range(m):
            z = b
            for j in range(n_x):
                z += w[j] * X[i][j]
            a = 1 / (1 + math.exp(-z))
            J += -(Y[i] * math.log(a) + (1 - Y[i]) * math.log(1 - a))
            dz = a - Y[i]
            for j in range(n_x):
                dw[j] += X[i][j] * dz
            db += dz
        w = [w[j] - RATE * dw[j] / m for j in range(n_x)]
        b -= RATE * db / m
    return w, b, J / m


def lesson_loop(X, Y, num_iterations=ITERATIONS, learning_rate=RATE):
    """The lesson's vectorised numpy gradient descent, as the notebook writes it."""
    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    m = X.shape[1]
    w, b = np.zeros((X.shape[0], 1)), 0
    for i in range(num_iterations):
        A = sigmoid(np.dot(w.T, X) + b)
        cost = -1 / m * np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A))
        dw = 1 / m * np.dot(X, (A - Y).T)
        db = 1 / m * np.sum(A - Y)
        w = w - learning_rate * dw
        b = b - learning_rate * db
    return w, b, cost


def best_of(repeat, run, min_seconds=0.0):
    """(seconds of the fastest run, the result of the last): at least `repeat` runs, and more until they
    add up to min_seconds."""
    times = []
    while len(times) < repeat or sum(times) < min_seconds:
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def best_in_rounds(runs, rounds, min_seconds=0.5):
    """{name: (fastest seconds, result)} for runs {name: function}. Each round runs every row (a fast row
    again until min_seconds), so that every row meets the same quiet and busy moments of the machine."""
    best = {}
    for _ in range(rounds):
        for name, run in runs.items():
            seconds, result = best_of(1, run, min_seconds)
            best[name] = min(best.get(name, (seconds, result)), (seconds, result), key=lambda t: t[0])
    return best


def course_table(data_dir, repeat):
    train, _ = data.load_course(data_dir)
    X, Y = features(train.x, fit_scaler("divide255", None)), train.y  # (12288, 209), (1, 209)
    lazy, _ = data.load_course(data_dir, lazy_train=True)
    base = TrainConfig(learning_rate=RATE, num_iterations=ITERATIONS, print_every=ITERATIONS)
    few = 2
    start = time.perf_counter()
    seed_loop([0.0] * X.shape[0], 0.0, X.T.tolist(), Y[0].tolist(), few)
    seed_seconds = (time.perf_counter() - start) * ITERATIONS / few
    configs = {"primal, float64": dict(solver="primal"), "primal, float32": dict(solver="primal", dtype="float32"),
               "gram, float64 (what auto picks)": dict(solver="gram"),
               "gram, float32": dict(solver="gram", dtype="float32"),
               "primal streaming from the HDF5 file": dict(streaming=True)}
    runs = {"lesson": lambda: lesson_loop(X, Y)}
    for name, keys in configs.items():
        config = dataclasses.replace(base, **keys)
        Xs = streaming.Chunks(lazy.x, fit_scaler("divide255", None), config.chunk_size) if config.streaming is True else X
        runs[name] = lambda Xs=Xs, config=config: fit(Xs, Y, config)
    best = best_in_rounds(runs, repeat)
    lesson_seconds, (w_ref, b_ref, _) = best.pop("lesson")
    rows = [(f"seed's for-loop (section 6: {few} iterations timed, extrapolated)", seed_seconds, None, None),
            ("lesson's vectorised loop (as the notebook writes it)", lesson_seconds, cross_entropy(w_ref.T @ X + b_ref, Y), 0.0)]
    for name, (seconds, (w, b, _)) in best.items():
        rows.append((f"pipeline {name}", seconds, cross_entropy(w.T @ X + b, Y), float(np.abs(w - w_ref).max())))
    print(f"Course data (209 images of 64x64x3, {ITERATIONS} iterations at {RATE}), fastest run of each row over "
          f"{repeat} rounds (each round runs every row; a fast row again until 0.5 s)\n")
    print("| version | seconds | speed-up | final cost | max abs(w - w_lesson) |")
    print("| ------- | ------: | -------: | ---------: | --------------------: |")
    for name, seconds, cost, diff in rows:
        cost = "" if cost is None else f"{cost:.9f}"
        diff = "" if diff is None else f"{diff:.1e}"
        print(f"| {name} | {seconds:.3f} | {lesson_seconds / seconds:.1f}x | {cost} | {diff} |")
    speedup = lesson_seconds / rows[4][1]
    assert "gram, float64" in rows[4][0]
    print(f"\ntarget: the course config (gram) trains at least 25x faster than the lesson's loop: {speedup:.1f}x, "
          f"{'met' if speedup >= 25 else 'NOT met'}")


def write_images(path, split, m, rng, chunk=5000):
    """A course-schema HDF5 file of m random 64x64x3 images, written chunk by chunk to keep memory small."""
    with h5py.File(path, "w") as f:
        x = f.create_dataset(f"{split}_set_x", (m, 64, 64, 3), dtype=np.uint8, chunks=(min(m, 64), 64, 64, 3))
        for j in range(0, m, chunk):
            x[j:j + chunk] = rng.integers(0, 256, size=(min(chunk, m - j), 64, 64, 3), dtype=np.uint8)
        f.create_dataset(f"{split}_set_y", data=np.arange(m) % 2)
        f.create_dataset("list_classes", data=np.array([b"non-cat", b"cat"]))


def cli_train(data_dir, run_dir, iterations, streaming_setting):
    """Run `python -m pipeline train` in a subprocess; return (seconds, peak RSS in bytes)."""
    args = [sys.executable, "-m", "pipeline", "train", "--quiet", "--run-dir", str(run_dir),
            "--set", f"data.dir={data_dir}", "--set", f"train.num_iterations={iterations}",
            "--set", "train.solver=primal", "--set", f"train.streaming={streaming_setting}"]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"bench: {' '.join(args)} failed: {proc.stderr.read().decode()}")
    proc.stderr.close()
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def scaling_table(sizes):
    print("\nScaling: `python -m pipeline train` (primal) on generated 64x64x3 images; seconds per iteration from "
          "the difference between a run of 1 iteration and a longer one, peak RSS of the whole run\n")
    print("| images | mode | seconds per iteration | peak RSS (MiB) |")
    print("| -----: | ---- | --------------------: | -------------: |")
    rng = np.random.default_rng(0)
    peak_100k = None
    for m in sizes:
        with tempfile.TemporaryDirectory(prefix="catneuron-bench-") as tmp:
            write_images(Path(tmp) / "train_catvnoncat.h5", "train", m, rng)
            write_images(Path(tmp) / "test_catvnoncat.h5", "test", 50, rng)
            modes = ["true"] if m * 12288 * streaming.in_memory_bytes_per_pixel("float64") > 4 << 30 else ["false", "true"]
            for mode in modes:
                more = 1 + max(10, 2_000_000 // m)  # enough iterations for their time to stand out of the set-up's
                t1, rss1 = cli_train(tmp, Path(tmp) / f"run1-{mode}", 1, mode)
                t2, rss2 = cli_train(tmp, Path(tmp) / f"run2-{mode}", more, mode)
                name = "streaming" if mode == "true" else "in memory"
                peak = max(rss1, rss2)
                print(f"| {m} | {name} | {(t2 - t1) / (more - 1):.3f} | {peak / 2**20:.0f} |")
                if mode == "true" and m >= 100_000:
                    peak_100k = peak
    if peak_100k is not None:
        print(f"\ntarget: 100k images stream with peak RSS under 1 GiB: {peak_100k / 2**20:.0f} MiB, "
              f"{'met' if peak_100k < 2**30 else 'NOT met'}")


def vectorisation_demo():
    """The course's demo: a 1e6-element dot product, np.dot against a Python for loop over the same arrays."""
    rng = np.random.default_rng(0)
    a, b = rng.random(1_000_000), rng.random(1_000_000)
    vectorised, c = best_of(5, lambda: np.dot(a, b), min_seconds=0.1)

    def loop():
        c = 0.0
        for i in range(1_000_000):
            c += a[i] * b[i]
        return c

    looped, c_loop = best_of(1, loop)
    print(f"\nThe notes' vectorisation demo, a 1e6-element dot product: np.dot {vectorised * 1e3:.2f} ms, "
          f"Python for-loop {looped * 1e3:.0f} ms ({looped / vectorised:.0f}x slower); "
          f"results {c:.6f} and {c_loop:.6f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CATVNONCAT_DIR", "data/raw"),
                        help="folder with the course's HDF5 files (default: $CATVNONCAT_DIR or data/raw)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per course row; the fastest counts")
    parser.add_argument("--sizes", default="1000,10000,100000", help="image counts of the scaling rows")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    course_table(Path(args.data), args.repeat)
    scaling_table([int(s) for s in args.sizes.split(",") if s])
    vectorisation_demo()
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
