"""Benchmark `python -m pipeline predict`: wall time for one image, throughput on a folder, JPEG draft mode.

    .venv/bin/python scripts/bench_predict.py [--count 300] [--size 1600x1200]

Generates photo-like JPEGs and a model with random weights in a temporary folder (nothing else is written),
then times real CLI runs in subprocesses. Not a test: the figures depend on the machine.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.artifacts import Model, save_model  # noqa: E402
from pipeline.features import Scaler  # noqa: E402
from pipeline.images import load_image  # noqa: E402


def photo(rng, width, height):
    """A smooth random picture with some grain, saved the way cameras do (JPEG, quality 90)."""
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(image + grain, 0, 255).astype(np.uint8))


def cli_seconds(*args):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "predict", "--quiet", *map(str, args)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="JPEGs in the folder (default 300)")
    parser.add_argument("--size", default="1600x1200", help="their size, WxH (default 1600x1200)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the one-image timing (default 5)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        empty = np.zeros((0, 1))
        save_model(tmp / "model.npz", Model(w=rng.normal(0, 0.01, (64 * 64 * 3, 1)), b=0.0, image_shape=(64, 64, 3),
                                            scaler=Scaler("divide255", empty, empty), classes=("non-cat", "cat"),
                                            threshold=0.5))
        (tmp / "photos").mkdir()
        for k in range(args.count):
            photo(rng, width, height).save(tmp / "photos" / f"IMG_{k:04d}.jpg", quality=90)
        one = tmp / "photos" / "IMG_0000.jpg"

        single = [cli_seconds("--model", tmp / "model.npz", one) for _ in range(args.repeat)]
        folder = cli_seconds("--model", tmp / "model.npz", tmp / "photos", "--json")
        print(f"machine: {sys.platform}, Python {sys.version.split()[0]}, {args.count} JPEGs of {width}x{height}")
        print(f"one image, whole CLI run (median of {args.repeat}): {statistics.median(single):.2f} s")
        print(f"folder of {args.count}: {folder:.2f} s, {args.count / folder:.1f} images/s")

        paths = sorted((tmp / "photos").iterdir())[:50]
        timings, diffs = {}, []
        for draft in (True, False):
            start = time.perf_counter()
            loaded = [load_image(p, (64, 64), draft=draft) for p in paths]
            timings[draft] = (time.perf_counter() - start) / len(paths)
            diffs.append(loaded)
        delta = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(*diffs))
        mean = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(*diffs)])
        print(f"load_image per JPEG: draft {timings[True] * 1000:.1f} ms, full decode {timings[False] * 1000:.1f} ms "
              f"({timings[False] / timings[True]:.1f}x); 64x64 pixels differ by at most {delta} "
              f"(mean {mean:.2f}) grey levels")


if __name__ == "__main__":
    main()
