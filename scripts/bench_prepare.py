"""Benchmark: images per second of `prepare` against a plain single-process Pillow loop.

Generates a folder of phone-camera-sized JPEGs (cat/ and non-cat/) in a temporary folder, then times
1. the plain loop: Image.open(path).convert("RGB").resize((64, 64), BILINEAR), one file after another;
2. pipeline.prepare.prepare (worker processes, JPEG draft mode, sha256 of every file, the HDF5 writing
   and the audit included), on the same files;
and reports how far the two results differ in pixel values. Nothing is left behind.

    .venv/bin/python scripts/bench_prepare.py [--count 2000] [--min-px 1000] [--max-px 4000] [--workers N]
"""
import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.config import load_config  # noqa: E402
from pipeline.prepare import prepare  # noqa: E402
from demo_photos import make_photo  # noqa: E402  (scripts/demo_photos.py: the classes differ visibly)


def generate(root, args, rng):
    """args.count JPEGs under root/cat and root/non-cat, generated in parallel; returns the tasks."""
    tasks = []
    for i in range(args.count):
        label = "cat" if i % 2 else "non-cat"
        (root / label).mkdir(parents=True, exist_ok=True)
        tasks.append((root / label / f"{i:05d}.jpg", int(rng.integers(args.min_px, args.max_px + 1)), i))
    start = time.perf_counter()
    with multiprocessing.Pool() as pool:
        pool.map(make_photo, tasks, chunksize=8)
    megabytes = sum(t[0].stat().st_size for t in tasks) / 1e6
    print(f"generated {args.count} JPEGs of {args.min_px}-{args.max_px} px (long side), {megabytes:.0f} MB, "
          f"in {time.perf_counter() - start:.0f} s, into {root}")
    return tasks


def plain_loop(paths, size):
    return {p: np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
            for p in paths}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images to generate (default 2000)")
    parser.add_argument("--min-px", type=int, default=1000, help="smallest long side (default 1000)")
    parser.add_argument("--max-px", type=int, default=4000, help="largest long side (default 4000)")
    parser.add_argument("--workers", type=int, default=None, help="prepare's worker processes (default: all cores)")
    parser.add_argument("--keep", metavar="DIR", help="only generate the photos into DIR (a new folder) and keep them")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.keep:
        if Path(args.keep).exists():
            sys.exit(f"error: {args.keep}: already exists; --keep needs a new folder")
        generate(Path(args.keep), args, rng)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tasks = generate(tmp / "photos", args, rng)

        start = time.perf_counter()
        plain = plain_loop([t[0] for t in tasks], 64)
        plain_rate = args.count / (time.perf_counter() - start)

        config_path = tmp / "bench.yaml"
        config_path.write_text(yaml.safe_dump({"data": {"source": "folder", "root": str(tmp / "photos")}}))
        os.chdir(tmp)  # data/processed/ goes into the temporary folder
        start = time.perf_counter()
        folder, report, _ = prepare(load_config(config_path), workers=args.workers, force=True)
        rate = args.count / (time.perf_counter() - start)

        diffs = []
        for split in ("train", "test"):
            with h5py.File(folder / f"{split}.h5", "r") as f:
                for x, source in zip(f[f"{split}_set_x"], f[f"{split}_set_source"]):
                    diffs.append(np.abs(x.astype(np.int16) - plain[tmp / "photos" / source.decode()]))
        diffs = np.stack(diffs)
        workers = args.workers or os.cpu_count()
        print(f"plain loop (1 process, full decode): {plain_rate:7.1f} images/s")
        print(f"prepare ({workers} workers, draft mode): {rate:7.1f} images/s  ({rate / plain_rate:.1f}x)")
        print(f"pixel difference to the plain loop: mean {diffs.mean():.2f}, 99th percentile "
              f"{np.percentile(diffs, 99):.0f}, max {diffs.max()} (of 255)")
        print(f"skipped {len(report['skipped'])}, cores {os.cpu_count()}")


if __name__ == "__main__":
    main()
