"""Benchmark: the seed's for-loop, the lesson's vectorised loop and this pipeline's solvers on the course data,
then scaling on generated 64x64x3 datasets (in memory, streaming and Dask: time per iteration and peak memory of
real `train` processes), a bandwidth model for more Dask workers, prepare against a plain Pillow loop and the
whole `train` process (scripts/bench_prepare.py), the notes' vectorisation demo, and train.solver lbfgs against
scikit-learn (scripts/bench_solver.py; alone with --only solver). Every row is measured in this run.

    python scripts/bench.py [--data data/raw] [--repeat 3] [--sizes 1000,10000,100000] [--memory-sizes 50000]
                            [--threads N] [--dask-workers 1,2] [--only solver]
"""
import argparse
import dataclasses
import functools
import importlib.util
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
if "--threads" in sys.argv[:-1]:  # before numpy is imported, so that this process and its children use them
    for var in BLAS_THREAD_VARS:
        os.environ[var] = sys.argv[sys.argv.index("--threads") + 1]

import h5py  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipeline import data, streaming  # noqa: E402
from pipeline.config import TrainConfig  # noqa: E402
from pipeline.features import features, fit_scaler  # noqa: E402
from pipeline.model import cross_entropy  # noqa: E402
from pipeline.train import fit  # noqa: E402

import bench_prepare  # noqa: E402  (scripts/bench_prepare.py, beside this file)
import bench_solver  # noqa: E402  (scripts/bench_solver.py)

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
        Xs = (streaming.Chunks(lazy.x, fit_scaler("divide255", None), config.chunk_size, config.dtype,
                               config.memory_budget * streaming.MIB) if config.streaming is True else X)
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
    """A course-schema HDF5 file of m random 64x64x3 images in the layout prepare writes (chunked by 64 examples,
    uncompressed), written chunk by chunk to keep memory small."""
    with h5py.File(path, "w") as f:
        x = f.create_dataset(f"{split}_set_x", (m, 64, 64, 3), dtype=np.uint8, chunks=(min(m, 64), 64, 64, 3))
        for j in range(0, m, chunk):
            x[j:j + chunk] = rng.integers(0, 256, size=(min(chunk, m - j), 64, 64, 3), dtype=np.uint8)
        f.create_dataset(f"{split}_set_y", data=np.arange(m) % 2)
        f.create_dataset("list_classes", data=np.array([b"non-cat", b"cat"]))


N_X = 64 * 64 * 3
BOUND_SLACK = 150 << 20  # in-memory peak RSS bound: 1.25 x the scaled copy of X + this
SCRATCH = ROOT / "data" / "processed"  # generated datasets, removed after use (in /tmp, others may clean them)
# `python -m pipeline` with each line it prints stamped with the time it was written (a pipe may deliver several
# lines at once) and its own peak RSS (VmHWM) printed on stderr as it exits: the rusage of a child can report the
# parent's RSS instead (execve keeps the larger high-water mark of the memory it replaces)
CHILD = """
import atexit, runpy, sys, time
class Stamped:
    def __init__(self, f):
        self.f, self.start = f, True
    def write(self, text):
        out = []
        for piece in text.splitlines(True):
            out += [f"{time.perf_counter()!r} "] * self.start + [piece]
            self.start = piece.endswith("\\n")
        return self.f.write("".join(out))
    def __getattr__(self, name):
        return getattr(self.f, name)
sys.stdout = Stamped(sys.stdout)
atexit.register(lambda: print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")), file=sys.stderr))
sys.argv[0] = "pipeline"
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


def cli_train(data_dir, run_dir, iterations, *sets):
    """Run `python -m pipeline train` (printing every cost) in a subprocess, timing each cost line as written.

    Returns (fastest and median seconds of the iterations after the first, whole-process seconds, peak RSS in
    bytes)."""
    args = [sys.executable, "-c", CHILD, "train", "--quiet", "--run-dir", str(run_dir),
            "--set", f"data.dir={data_dir}", "--set", f"train.num_iterations={iterations}",
            "--set", "train.print_every=1", "--set", "train.solver=primal"]
    for s in sets:
        args += ["--set", s]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"))
    stamps = [float(line.split(" ", 1)[0]) for line in proc.stdout if " Cost after iteration" in line]
    error = proc.stderr.read()
    proc.wait()
    seconds = time.perf_counter() - start
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode or len(stamps) != iterations:
        sys.exit(f"bench: {' '.join(args)} failed: {error}")
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]  # iteration 0 reads the file: not counted
    peak = int(error.rsplit("VmHWM:", 1)[1].split()[0]) * 1024  # kB
    return min(intervals), statistics.median(intervals), seconds, peak


def iterations_for(m, seconds_per_pixel):
    """Enough iterations for about 2 s of them, from a rough guess of the time per iteration."""
    return int(min(300, max(5, 2 / (m * N_X * seconds_per_pixel))))


def scaling_rows(sizes, dask_workers, memory_sizes=()):
    """Run every mode on generated datasets of each size, and in memory only on memory_sizes; returns rows
    (m, mode, dtype, fastest s/it, median s/it, process s, peak rss)."""
    modes = [("in memory", "float64", ["train.streaming=false"], 1e-9),
             ("in memory", "float32", ["train.streaming=false"], 5e-10),
             ("streaming", "float64", ["train.streaming=true"], 1e-9),
             ("streaming", "float32", ["train.streaming=true"], 5e-10)]
    if dask_workers and has_dask():
        modes += [(f"Dask, {n} worker{'s' * (n > 1)}", "float32", n, 1e-9) for n in dask_workers]
    rows, rng = [], np.random.default_rng(0)
    largest_in_memory = max(memory_sizes, default=max(sizes))  # no more: memory is shared with others here
    with tempfile.TemporaryDirectory(prefix="bench-", dir=SCRATCH) as tmp:
        folders = {m: Path(tmp) / str(m) for m in sorted(set(sizes) | set(memory_sizes))}
        for m, folder in folders.items():
            folder.mkdir()
            write_images(folder / "train_catvnoncat.h5", "train", m, rng)
            write_images(folder / "test_catvnoncat.h5", "test", 50, rng)
        # mode by mode: Dask last, as its processes (even closed) can slow the local rows that follow them
        for k, (mode, dtype, sets, guess) in enumerate(modes):
            for m, folder in folders.items():
                if (m not in sizes and mode != "in memory") or (mode == "in memory" and m > largest_in_memory):
                    continue
                run = functools.partial(cli_train, folder, folder / f"run{k}", iterations_for(m, guess),
                                        f"train.dtype={dtype}")
                if isinstance(sets, int):
                    # a cluster only for its own row: idle Dask processes beside a run slow it (they take the
                    # CPU's caches from the blocks that streaming scales in cache)
                    with local_cluster(sets) as cluster:
                        result = run("train.engine=dask", f"train.scheduler={cluster.scheduler_address}")
                else:
                    result = run(*sets)
                rows.append((m, mode, dtype, *result))
                print_row(rows[-1])
    return rows


def has_dask():
    """Whether the Dask rows can run; says so when they cannot."""
    if importlib.util.find_spec("distributed") and importlib.util.find_spec("dask"):
        return True
    print("(no Dask rows: Dask is not installed; pip install -e '.[dask]')")
    return False


def local_cluster(n):
    """A distributed.LocalCluster of n single-threaded worker processes."""
    import logging

    from distributed import LocalCluster

    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                        silence_logs=logging.ERROR)


def print_row(row):
    m, mode, dtype, fastest, median, seconds, rss = row
    note = ""
    if mode == "in memory":
        copy = m * N_X * np.dtype(dtype).itemsize
        bound = 1.25 * copy + BOUND_SLACK
        note = (f"copy of X {copy / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB: "
                f"{'within' if rss <= bound else 'OVER'}")
    elif mode == "streaming":
        note = f"{'within' if rss <= 2**30 else 'OVER'} 1 GiB"
    else:
        note = "this process only (the workers hold the images)"
    print(f"| {m} | {mode} | {dtype} | {fastest:.4f} | {median:.4f} | {rss / 2**20:.0f} | {note} | {seconds:.1f} |",
          flush=True)


def scaling_table(sizes, dask_workers, memory_sizes=()):
    print("\nScaling: `python -m pipeline train` (primal) on generated 64x64x3 images stored as prepare stores them; "
          "seconds per iteration = the fastest and the median interval between the cost lines of iterations 1 and "
          "later (iteration 0 reads the file; the fastest is the machine's speed when others leave it alone), peak "
          "RSS of the train process, whole process time (loading, training, evaluation, report)\n")
    print("| images | mode | dtype | s/iteration, fastest | s/iteration, median | peak RSS (MiB) | memory "
          "| process seconds |")
    print("| -----: | ---- | ----- | -------------------: | ------------------: | -------------: | ------ "
          "| --------------: |")
    rows = scaling_rows(sizes, dask_workers, memory_sizes)
    by = {(m, mode, dtype): r for m, mode, dtype, *r in rows}
    print()
    for m in sorted(set(sizes) | set(memory_sizes)):
        memory, stream = by.get((m, "in memory", "float32")), by.get((m, "streaming", "float32"))
        if memory and stream:
            ratio = stream[0] / memory[0]
            print(f"target: streaming per iteration <= 2x in-memory float32 at {m} images: {ratio:.2f}x, "
                  f"{'met' if ratio <= 2 else 'NOT met'} ({stream[1] / memory[1]:.2f}x by the median)")
    for dtype in ("float64", "float32"):
        stream = by.get((max(sizes), "streaming", dtype))
        if stream and max(sizes) >= 100_000:
            before = 3.5 * max(sizes) / 100_000  # seconds per iteration before (3.5 s per 100k images)
            speedup = before / stream[0]
            print(f"target: {max(sizes)} images streaming in {dtype} >= 5x faster than 3.5 s per 100k images: "
                  f"{speedup:.1f}x, {'met' if speedup >= 5 else 'NOT met'} ({before / stream[1]:.1f}x "
                  f"by the median); peak RSS {stream[3] / 2**20:.0f} MiB, {'met' if stream[3] <= 2**30 else 'NOT met'} "
                  "(<= 1 GiB)")
    streaming_ratio()
    bandwidth_model(rows)


def streaming_ratio(m=10_000, rounds=5, iterations=3):
    """Streaming against in-memory training in float32 on the same m generated images, in this process: each
    round runs both (interleaved, so that they meet the same moments of a busy machine), the fastest round counts."""
    config = TrainConfig(num_iterations=iterations, dtype="float32", solver="primal")
    scaler = fit_scaler("divide255", None)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=SCRATCH) as tmp:
        write_images(Path(tmp) / "train.h5", "train", m, np.random.default_rng(1))
        with h5py.File(Path(tmp) / "train.h5", "r") as f:
            x, y = f["train_set_x"], f["train_set_y"][()][None, :]  # (1, m)
            chunks = streaming.Chunks(x, scaler, config.chunk_size, "float32", config.memory_budget * streaming.MIB)
            fit(chunks, y, dataclasses.replace(config, num_iterations=1))  # the first pass reads the file
            X = streaming.Chunks(x[()], scaler, config.chunk_size, "float32").materialize()  # (n_x, m)
            best = best_in_rounds({"in memory": lambda: fit(X, y, config),
                                   "streaming": lambda: fit(chunks, y, config)}, rounds, min_seconds=0)
    memory, stream = (best[name][0] / iterations for name in ("in memory", "streaming"))
    print(f"\nStreaming against in memory, float32, {m} images, in one process, fastest of {rounds} interleaved "
          f"rounds of {iterations} iterations: in memory {memory:.4f} s, streaming {stream:.4f} s per iteration")
    print(f"target: streaming per iteration <= 2x in-memory float32 at {m} images (interleaved): {stream / memory:.2f}x, "
          f"{'met' if stream / memory <= 2 else 'NOT met'}")


def bandwidth_model(rows, network=1.25e9, hop=1e-3):
    """Per-iteration time on N Dask workers: t(N, m) = overhead + m * n_x / (N * rate) + log2(N) * (n_x * 8 /
    network + hop). overhead and rate come from this run's 1-worker rows (smallest and largest size); network
    (bytes/s, 10 Gb/s) and hop (s per level of the tree sum) are assumptions."""
    one = sorted((row[0], row[3]) for row in rows if row[1] == "Dask, 1 worker")  # (m, s per iteration)
    if len(one) < 2:
        return
    (m0, t0), (m1, t1) = one[0], one[-1]
    rate = (m1 - m0) * N_X / max(t1 - t0, 1e-9)  # pixels per second of one worker
    overhead = max(t0 - m0 * N_X / rate, 0.0)

    def predict(n, m):
        return overhead + m * N_X / (n * rate) + math.log2(n) * (N_X * 8 / network + hop)

    print(f"\nBandwidth model for Dask: t(N, m) = {overhead * 1e3:.0f} ms + m * 12288 / (N * {rate / 1e9:.2f}e9 "
          f"pixels/s) + log2(N) * ({N_X * 8 / network * 1e3:.2f} ms + {hop * 1e3:.0f} ms); overhead and rate "
          f"measured here with 1 worker, the network (10 Gb/s) and 1 ms per level of the tree sum assumed\n")
    print("| images | workers | predicted seconds per iteration | measured here |")
    print("| -----: | ------: | ------------------------------: | ------------: |")
    measured = {(row[0], row[1]): row[3] for row in rows if row[1].startswith("Dask")}  # the fastest
    for m in (m1, 1_000_000, 10_000_000):
        for n in (1, 2, 10, 100):
            seen = measured.get((m, f"Dask, {n} worker{'s' * (n > 1)}"))
            print(f"| {m} | {n} | {predict(n, m):.3f} | {'' if seen is None else f'{seen:.3f}'} |")


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("CATVNONCAT_DIR", "data/raw"),
                        help="folder with the course's HDF5 files (default: $CATVNONCAT_DIR or data/raw)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per course row; the fastest counts")
    parser.add_argument("--sizes", default="1000,10000,100000", help="image counts of the scaling rows")
    parser.add_argument("--memory-sizes", default="50000", help="more image counts, for the in-memory rows only")
    parser.add_argument("--threads", type=int, help="BLAS threads for this process and the trainings it runs "
                        "(sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS; default: as they are)")
    parser.add_argument("--dask-workers", default="1,2", help="worker counts of the Dask rows (empty: none)")
    parser.add_argument("--only", choices=["solver"], help="run only these rows: solver, train.solver lbfgs against "
                        "scikit-learn (scripts/bench_solver.py)")
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, numpy {np.__version__}, {os.cpu_count()} cores, "
          f"load average {load} (1, 5, 15 min), BLAS threads: {blas_threads()}\n")
    if args.only != "solver":
        all_but_the_solver_rows(args)
    print("\ntrain.solver lbfgs against scikit-learn (scripts/bench_solver.py)\n")
    bench_solver.print_table(args.data)
    print(f"\nload average at the end {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def all_but_the_solver_rows(args):
    course_table(Path(args.data), args.repeat)
    counts = ([int(s) for s in arg.split(",") if s] for arg in (args.sizes, args.dask_workers, args.memory_sizes))
    scaling_table(*counts)
    print("\nPrepare against the plain Pillow loop, and the whole `train` process on the course data "
          "(scripts/bench_prepare.py)\n")
    bench_prepare.print_table(args.data)
    vectorisation_demo()


def blas_threads():
    """The BLAS thread count: threadpoolctl's report if it is installed, else the environment variables."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        set_vars = [f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARS if v in os.environ]
        return ", ".join(set_vars) or f"not set (the BLAS default, usually {os.cpu_count()})"
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()
                     if i.get("user_api") == "blas") or "no BLAS found"


if __name__ == "__main__":
    main()
