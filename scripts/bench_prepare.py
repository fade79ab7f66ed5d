"""Benchmark: `prepare` against the plain Pillow loop on ordinary (~500 px) and phone-size (~4000 px) JPEGs,
and the whole-process time of `python -m pipeline train` on the course data.

The photos are made here, in a temporary folder that is removed afterwards: the course's own 64x64 photos
upscaled (bicubic) to the size asked, with grain (Gaussian noise) so that they compress like real photos
(about 50 KB at 500 px, about 4 MB at 4000x3000), saved as JPEG quality 88, one in five with the EXIF
orientation 6 (a phone held upright). Each row is timed in several rounds, both sides interleaved, and the
fastest of each counts; prepare's time includes its worker pool, sha256 of every file, the HDF5 writing, the
audit and the report. The plain loop is the issue's, as written:

    np.stack([np.asarray(Image.open(f).convert('RGB').resize((64, 64))) for f in files])

Beside them, the loader alone: every file read and decoded by load_image in as many forked processes as prepare has workers, and
nothing else. Its ratio to the plain loop is the most any prepare could reach with this decoder on this machine.

    .venv/bin/python scripts/bench_prepare.py [--data data/raw] [--ordinary 600] [--phone 40] [--rounds 3]

A demo folder to train on is made by `catneuron demo-photos DIR` (pipeline/demo.py), whose two classes differ visibly.
"""
import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipeline.config import load_config  # noqa: E402
from pipeline.images import load_image  # noqa: E402
from pipeline.prepare import prepare  # noqa: E402

ORDINARY_PX, PHONE_PX = 500, 4000  # long sides
PREPARE_TARGETS = {"ordinary": 5.0, "phone": 10.0}  # prepare must be at least this many times the plain loop
TRAIN_TARGET = 0.25  # seconds: the median whole-process `train` on the course data


def make_photos(folder, count, long_side, data_dir, seed=0):
    """count JPEGs under folder/cat and folder/non-cat, made from the course's training images (see the module
    docstring); returns their paths."""
    with h5py.File(Path(data_dir) / "train_catvnoncat.h5", "r") as f:
        x, y = f["train_set_x"][()], f["train_set_y"][()]  # (209, 64, 64, 3), (209,)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        same_class = np.flatnonzero(y == i % 2)  # cats and non-cats in turn, each a course photo of its class
        k = same_class[(i // 2) % len(same_class)]
        short = long_side * 3 // 4
        size = (long_side, short) if i % 2 else (short, long_side)  # landscape and portrait
        pixels = np.asarray(Image.fromarray(x[k]).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * 8  # grain, as a camera's sensor adds
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = Path(folder) / ("cat" if y[k] else "non-cat") / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        if i % 5 == 0:
            exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
        image.save(path, quality=88, exif=exif)
        paths.append(path)
    return paths


def plain_loop(files):
    """The issue's baseline: one process, full decode, Pillow's default (bicubic) resize. (m, 64, 64, 3)."""
    return np.stack([np.asarray(Image.open(f).convert('RGB').resize((64, 64))) for f in files])


def loader_alone(files, workers):
    """The floor under prepare: every file read and decoded by pipeline.images.load_image as prepare does, split
    evenly over `workers` forked processes, nothing hashed, sent back or written (Linux: fork)."""
    def part(k):
        for f in files[k::workers]:
            load_image(f, (64, 64), data=Path(f).read_bytes())
    processes = [multiprocessing.get_context("fork").Process(target=part, args=(k,)) for k in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    assert all(p.exitcode == 0 for p in processes), "a loader process failed"


def run_prepare(folder, workers=None):
    """prepare() on the photo folder, forced, into folder/../data/processed; returns the prepared folder."""
    config_path = Path(folder).parent / f"{Path(folder).name}.yaml"
    config_path.write_text(yaml.safe_dump({"data": {"source": "folder", "root": str(folder)}}))
    cwd = os.getcwd()
    os.chdir(Path(folder).parent)  # prepare writes data/processed/ under the working folder
    try:
        out, report, _ = prepare(load_config(config_path), workers=workers, force=True)
    finally:
        os.chdir(cwd)
    assert not report["skipped"], report["skipped"]
    return Path(folder).parent / out


def draft_difference(prepared, photos):
    """|prepared pixels - a full decode's (load_image(draft=False))| over every prepared image: (mean, p99, max)."""
    diffs = []
    for split in ("train", "test"):
        with h5py.File(prepared / f"{split}.h5", "r") as f:
            for x, source in zip(f[f"{split}_set_x"], f[f"{split}_set_source"]):
                full = load_image(Path(photos) / source.decode(), (64, 64), draft=False)
                diffs.append(np.abs(x.astype(np.int16) - full))
    diffs = np.stack(diffs)
    return float(diffs.mean()), float(np.percentile(diffs, 99)), int(diffs.max())


def cpu_seconds():
    """CPU time (user + system) of this process and of its finished children so far."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def prepare_rows(data_dir="data/raw", ordinary=600, phone=40, workers=None, rounds=3):
    """Time prepare against the plain loop on `ordinary` JPEGs of ~500 px and `phone` JPEGs of ~4000x3000 px.

    Returns one dict per kind: {"row", "images", "plain_seconds", "prepare_seconds", "ratio", "target", "met",
    "loader_seconds", "loader_ratio" (loader_alone: the decoding alone in as many processes, the most any prepare
    could gain on this machine), "plain_cpu", "prepare_cpu" (CPU seconds of the fastest rounds, prepare's worker processes included: on a
    busy machine they show what the work costs when the wall clock cannot), "pixel_difference": (mean, p99,
    max) of prepare's pixels against a full decode's}.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="catneuron-bench-prepare-") as tmp:
        for kind, count, side in (("ordinary", ordinary, ORDINARY_PX), ("phone", phone, PHONE_PX)):
            if not count:
                continue
            folder = Path(tmp) / kind
            files = make_photos(folder, count, side, data_dir)
            n = workers or os.cpu_count()
            best = dict.fromkeys(("plain", "prepare", "loader"), (float("inf"), 0.0))  # (wall, CPU) seconds
            results = {}
            for _ in range(rounds):  # interleaved: every side meets the same busy and quiet moments
                for name, run in (("plain", lambda: plain_loop(files)), ("prepare", lambda: run_prepare(folder, workers)),
                                  ("loader", lambda: loader_alone(files, n))):
                    start, cpu = time.perf_counter(), cpu_seconds()
                    results[name] = run()
                    best[name] = min(best[name], (time.perf_counter() - start, cpu_seconds() - cpu))
            ratio = best["plain"][0] / best["prepare"][0]
            rows.append({"row": f"prepare ({n} workers) vs the plain loop, {count} {kind} "
                                f"JPEGs of {side * 3 // 4}x{side} px",
                         "images": count, "plain_seconds": best["plain"][0], "prepare_seconds": best["prepare"][0],
                         "plain_cpu": best["plain"][1], "prepare_cpu": best["prepare"][1],
                         "loader_seconds": best["loader"][0], "loader_ratio": best["plain"][0] / best["loader"][0],
                         "ratio": ratio, "target": PREPARE_TARGETS[kind], "met": ratio >= PREPARE_TARGETS[kind],
                         "pixel_difference": draft_difference(results["prepare"], folder)})
    return rows


def train_process_row(data_dir="data/raw", runs=7):
    """Median wall time of the whole process `python -m pipeline train --quiet` on the course data, after one
    warm-up run. Returns {"row", "median_seconds", "median_cpu" (CPU seconds, BLAS threads and git included),
    "runs", "target", "met", "floor_seconds", "floor_cpu"}; every run must print the same. The floor is the
    median of a process that only imports what train cannot do without (numpy, h5py, Pillow, yaml), run
    after each train process."""
    train = [sys.executable, "-m", "pipeline", "train", "--quiet", "--set", f"data.dir={Path(data_dir).resolve()}"]
    floor = [sys.executable, "-c", "import numpy, h5py, PIL.Image, yaml"]
    timed, outputs = {"train": [], "floor": []}, set()  # (wall, CPU) seconds
    # bytecode is written, so that the warm-up run caches it as a user's first run does (PYTHONDONTWRITEBYTECODE
    # would have every run compile the pipeline's modules again: about 40 ms)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="catneuron-bench-train-") as tmp:
        for i in range(runs + 1):
            for name, args in (("train", train + ["--run-dir", str(Path(tmp) / f"run{i}")]), ("floor", floor)):
                start, cpu = time.perf_counter(), cpu_seconds()
                done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                                      env=dict(env, PYTHONPATH=str(ROOT)))
                seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
                if done.returncode:
                    sys.exit(f"bench: {' '.join(args)} failed: {done.stderr}")
                if i:  # the first run warms the disk cache and the bytecode
                    timed[name].append((seconds, cpu))
                if name == "train":
                    outputs.add(done.stdout)
    assert len(outputs) == 1, "train printed different results in different runs"
    median = statistics.median(t for t, _ in timed["train"])
    return {"row": f"python -m pipeline train on the course data (whole process, median of {runs})",
            "median_seconds": median, "median_cpu": statistics.median(c for _, c in timed["train"]), "runs": runs,
            "target": TRAIN_TARGET, "met": median <= TRAIN_TARGET,
            "floor_seconds": statistics.median(t for t, _ in timed["floor"]),
            "floor_cpu": statistics.median(c for _, c in timed["floor"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CATVNONCAT_DIR", "data/raw"),
                        help="folder with the course's HDF5 files (default: $CATVNONCAT_DIR or data/raw)")
    parser.add_argument("--ordinary", type=int, default=600, help="ordinary photos, ~500 px (default 600)")
    parser.add_argument("--phone", type=int, default=40, help="phone-size photos, ~4000x3000 px (default 40)")
    parser.add_argument("--workers", type=int, help="prepare's worker processes (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the fastest of each side counts")
    parser.add_argument("--train-runs", type=int, default=7, help="timed `train` processes (default 7)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    print_table(args.data, args.ordinary, args.phone, args.workers, args.rounds, args.train_runs)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def print_table(data, ordinary=600, phone=40, workers=None, rounds=3, train_runs=7):
    """The rows of prepare_rows and train_process_row as one markdown table (make bench prints it too)."""
    print("| row | plain loop (s) | pipeline (s) | ratio | target | met | the loader alone (s): ratio | "
          "CPU s: plain / pipeline | pixels vs a full decode (mean / p99 / max) |")
    print("| --- | -------------: | -----------: | ----: | -----: | --- | --------------------------: | "
          "----------------------: | ------------------------------------------ |")
    for r in prepare_rows(data, ordinary, phone, workers, rounds):
        mean, p99, top = r["pixel_difference"]
        print(f"| {r['row']} | {r['plain_seconds']:.3f} | {r['prepare_seconds']:.3f} | {r['ratio']:.1f}x | "
              f">= {r['target']:.0f}x | {'yes' if r['met'] else 'NO'} | {r['loader_seconds']:.3f}: {r['loader_ratio']:.1f}x | "
              f"{r['plain_cpu']:.2f} / {r['prepare_cpu']:.2f} | "
              f"{mean:.2f} / {p99:.0f} / {top} |")
    r = train_process_row(data, train_runs)
    print(f"| {r['row']} | | {r['median_seconds']:.3f} | | <= {r['target']} s | {'yes' if r['met'] else 'NO'} | | "
          f"/ {r['median_cpu']:.2f} | |")
    print(f"| its floor: python importing numpy, h5py, Pillow and yaml only (median of {r['runs']}) | | "
          f"{r['floor_seconds']:.3f} | | | | | / {r['floor_cpu']:.2f} | |")


if __name__ == "__main__":
    main()
