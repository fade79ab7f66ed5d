"""Numerical against analytic gradients of the lesson's cost, on the first training examples of the real data.

    python scripts/gradient_check.py [--data-dir DIR] [--examples M] [--epsilon EPS] [--seed S]

Prints the relative difference ||numeric - analytic|| / (||numeric|| + ||analytic||) for dw, db and both;
exits 1 when it is not below pipeline.gradcheck.TOLERANCE.
"""
import argparse
import os
import sys

import numpy as np

from pipeline import PipelineError
from pipeline.data import COURSE_FILES, load_split
from pipeline.features import features, fit_scaler
from pipeline.gradcheck import TOLERANCE, gradient_check


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CATVNONCAT_DIR", "data/raw"),
                        help="folder with the course files (default: $CATVNONCAT_DIR, else data/raw)")
    parser.add_argument("--examples", type=int, default=5, help="how many of the first training examples (default 5)")
    parser.add_argument("--epsilon", type=float, default=1e-7, help="finite-difference step (default 1e-7)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random point w, b checked (default 0)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    try:
        return check(args)
    except (PipelineError, OSError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


def check(args):
    path = os.path.join(args.data_dir, COURSE_FILES["train"])
    train = load_split(path, "train")
    if not 1 <= args.examples <= train.m:
        raise PipelineError(f"--examples: must be between 1 and {train.m} (the training examples in {path}), "
                            f"got {args.examples}")
    if not 0 < args.epsilon < 1:
        raise PipelineError(f"--epsilon: must be between 0 and 1 (exclusive), got {args.epsilon}")
    X = features(train.x[:args.examples], fit_scaler("divide255", None))  # (n_x, m), the lesson's pixel / 255
    Y = train.y[:, :args.examples]  # (1, m)
    # a random point, not the zero start: at w = 0 every a is 0.5 and a wrong dz could still pass
    rng = np.random.default_rng(args.seed)
    w, b = rng.normal(scale=0.01, size=(X.shape[0], 1)), float(rng.normal())  # (n_x, 1), float
    print(f"gradient check on the first {args.examples} training examples of {path}: "
          f"n_x = {X.shape[0]}, epsilon = {args.epsilon:g}")
    diff = gradient_check(w, b, X, Y, args.epsilon)
    for name in ("dw", "db", "all"):
        print(f"relative difference {name}: {diff[name]:.1e}")
    if diff["all"] >= TOLERANCE:
        print(f"error: the relative difference {diff['all']:.1e} is not below {TOLERANCE:g}: "
              "the analytic gradients are wrong", file=sys.stderr)
        return 1
    print(f"ok: below {TOLERANCE:g}, the analytic gradients of propagate are right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
