"""`python -m pipeline <command>`: parse arguments, load the config, call the stage, report errors in one line.

Exit codes: 0 success, 1 an error in the input or the environment (one line on stderr), 2 a usage error,
130 interrupted.
"""
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from pipeline import PipelineError, __version__
from pipeline.config import load_config
from pipeline.files import write_text


def info(message):
    """A progress message: stderr, so that results on stdout can be piped."""
    tqdm.write(message, file=sys.stderr)


def cmd_fetch(args):
    from pipeline.fetch import DEFAULT_SOURCE, fetch

    fetch(args.source or DEFAULT_SOURCE, args.dest, log=info)


def cmd_train(args):
    from pipeline.train import load_data, train

    config = load_config(args.config, args.set)
    splits = load_data(config)
    n = config.train.num_iterations
    with tqdm(total=n, desc="train", unit="it", file=sys.stderr, disable=args.quiet or not sys.stderr.isatty(),
              leave=False) as bar:
        run_dir, model, _ = train(config, *splits, Path(args.config).stem, args.run_dir,
                                  on_cost=lambda i, cost: tqdm.write(f"Cost after iteration {i}: {cost:f}"),
                                  on_step=lambda i: bar.update(), overrides=args.set, config_file=args.config)
    _print_accuracies(model, splits)
    info(f"run folder: {run_dir}")


def cmd_evaluate(args):
    from pipeline.artifacts import latest_run, load_model
    from pipeline.evaluate import evaluate
    from pipeline.train import load_data

    run_dir = Path(args.run) if args.run else latest_run()
    config = load_config(run_dir / "config.yaml", args.set)
    model = load_model(run_dir / "model.npz")
    train_set, test_set = load_data(config)
    evaluate(model, train_set, test_set, run_dir, config.evaluate.enlarge)
    _print_accuracies(model, (train_set, test_set))
    info(f"rewrote {run_dir / 'metrics.json'} and {run_dir / 'misclassified'}")


def cmd_sweep(args):
    from pipeline import sweep
    from pipeline.artifacts import new_run_dir

    if args.resume and (args.set or args.sweep_dir):
        raise PipelineError(f"--resume {args.resume}: --set and --sweep-dir cannot change a sweep being resumed")
    config_file = sweep.sweep_file(args.resume) if args.resume else Path(args.config)
    points, resolved = sweep.plan(config_file, args.set)
    data = sweep.load_all(points)  # before the sweep folder is claimed: a missing file leaves nothing behind
    sweep_dir = Path(args.resume) if args.resume else new_run_dir(config_file.stem, args.sweep_dir)
    if not args.resume:
        write_text(sweep_dir / sweep.SWEEP_FILE, f"# resolved from {' '.join([str(config_file), *args.set])}\n{resolved}")
    with tqdm(total=len(points), desc="sweep", unit="run", file=sys.stderr, leave=False,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        def done(name, error):
            bar.update()
            info(f"{sweep_dir / name}: {'failed: ' + error if error else 'done'}")
        try:
            rows = sweep.run(sweep_dir, points, data, args.jobs, args.set, config_file, on_done=done)
        except KeyboardInterrupt:
            info(f"{sweep_dir}: interrupted; finished runs are kept; "
                 f"finish with: python -m pipeline sweep --resume {sweep_dir}")
            raise
    print(sweep.markdown(rows), end="")
    info(f"sweep folder: {sweep_dir}")


def cmd_compare(args):
    from pipeline.compare import compare, render, run_dirs

    print(render(compare(run_dirs(args.paths)), "md" if args.md else "json" if args.json else "text"))


def _jobs(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _print_accuracies(model, splits):
    """The lesson's closing lines, computed as the lesson computes them."""
    from pipeline.evaluate import lesson_accuracy

    for name, split in zip(("train", "test"), splits):
        print(f"{name} accuracy: {lesson_accuracy(split.y, model.logits(split.x), model.threshold)} %")


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                             help="override one config key (repeatable); VALUE is read as YAML")

    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="The lesson's single-neuron cat/non-cat classifier, stage by stage.",
                                     epilog="Exit codes: 0 success, 1 error (one line on stderr), 2 usage, 130 interrupted.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", parents=[common], help="download the course's HDF5 files, sha256-checked")
    p.add_argument("--from", dest="source", metavar="SOURCE",
                   help="an http(s):// or file:// URL or a local folder holding the two files")
    p.add_argument("--dest", default="data/raw", help="where to put them (default: data/raw)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("train", parents=[common, with_config], help="train the neuron, write a run folder")
    p.add_argument("--config", default="configs/default.yaml", help="YAML config (default: configs/default.yaml)")
    p.add_argument("--run-dir", help="the run folder to write (new or empty; default: runs/<config>-<time>)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", parents=[common, with_config],
                       help="re-evaluate a run's model, rewrite its metrics and misclassified images")
    p.add_argument("--run", help="the run folder (default: the latest run under runs/)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sweep", parents=[common, with_config],
                       help="train one run per point of a config's sweep: grid, with a summary table")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--config", default="configs/lr_sweep.yaml",
                       help="YAML config with a sweep: block (default: configs/lr_sweep.yaml)")
    which.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted sweep in its folder")
    p.add_argument("--sweep-dir", help="the sweep folder to write (new or empty; default: runs/<config>-<time>)")
    p.add_argument("--jobs", type=_jobs, default=1, help="grid points trained in parallel processes (default: 1)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare", parents=[common], help="runs side by side: differing config values, metrics")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run folders or sweep folders")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--md", action="store_true", help="a markdown table")
    form.add_argument("--json", action="store_true", help="JSON")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (PipelineError, OSError, MemoryError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
