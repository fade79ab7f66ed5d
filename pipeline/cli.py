"""`python -m pipeline <command>`: parse arguments, load the config, call the stage, report errors in one line.

Exit codes: 0 success, 1 an error in the input or the environment (one line on stderr), 2 a usage error,
3 predict read some inputs but not all, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 141 stdout closed by
its reader. SIGTERM is handled as Ctrl-C is: temporary files and folders and unfinished run folders are removed.
"""
import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from pipeline import PipelineError, __version__
from pipeline.config import PACKAGED, config_name, find_config, load_config
from pipeline.files import write_text
from pipeline.images import FITS, RESAMPLES
from pipeline.names import printable


ERROR_MAX = 2000  # characters of an error message shown
NAME_SHOWN = 400  # characters of a file name shown in an error message


def info(message):
    """A progress message: stderr, so that results on stdout can be piped."""
    write(printable(message), sys.stderr)  # a file or class name cannot split or forge a line


def write(line, file=None):
    """print(line) to file (default stdout); through tqdm.write once tqdm is imported, as a bar may be showing."""
    if "tqdm" in sys.modules:
        sys.modules["tqdm"].tqdm.write(line, file=file)
    else:
        print(line, file=file or sys.stdout)


def progress(args, iterable=None, **options):
    """A tqdm bar on stderr, shown only on a terminal and without --quiet, gone when done."""
    if args.quiet or not sys.stderr.isatty():
        return _NoBar(iterable)
    from tqdm import tqdm  # only when a bar is shown: its import alone is a tenth of a short command's time

    return tqdm(iterable, file=sys.stderr, leave=False, **options)


class _NoBar:
    """What tqdm(iterable, disable=True) is, without importing tqdm: iterates, updates nothing, closes."""

    def __init__(self, iterable=None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass


def cmd_fetch(args):
    from pipeline.fetch import DEFAULT_SOURCE, fetch

    fetch(args.source or DEFAULT_SOURCE, args.dest, log=info)


def _prepare_options(args):
    """How a folder dataset is prepared when a command needs it (see cmd_prepare)."""
    return {"workers": getattr(args, "workers", None), "log": info, "progress": not args.quiet}


def cmd_prepare(args):
    from pipeline.prepare import prepare, summary

    config = load_config(args.config, args.set)
    if config.data.source != "folder":
        raise PipelineError(f"{args.config}: data.source is '{config.data.source}'; prepare needs a folder dataset "
                            "(data.source: folder, data.root: ...)")
    folder, report, _ = prepare(config, args.workers, args.force, args.strict, log=info, progress=not args.quiet)
    print("\n".join(map(printable, summary(folder, report))))


def cmd_audit(args):
    import json

    from pipeline.audit import audit, summary
    from pipeline.train import load_data

    config = load_config(args.config, args.set)
    if config.data.source == "folder":
        from pipeline.prepare import prepare

        _, report, _ = prepare(config, args.workers, log=info, progress=not args.quiet)
        result = report["audit"]
    else:
        sets = dict(zip(("train", "test"), load_data(config)))
        result = audit({s: (d.x, d.y, None) for s, d in sets.items()}, sets["train"].classes,
                       config.audit.near_distance)
    print(json.dumps(result, indent=2) if args.json else "\n".join(map(printable, summary(result))))


def cmd_train(args):
    from pipeline.train import check_choices, load_splits, train

    config = load_config(args.config, args.set)
    check_choices(config.train, config.data.val_fraction > 0)  # before preparing a folder: train checks again
    train_set, val_set, test_set = load_splits(config, **_prepare_options(args))
    n = config.train.num_iterations
    logits = {}  # each split's Z (1, m), computed once by train's evaluation
    with progress(args, total=n, desc="train", unit="it") as bar:
        run_dir, model, metrics = train(config, train_set, test_set, Path(args.config).stem, args.run_dir,
                                        on_cost=lambda i, cost: write(f"Cost after iteration {i}: {cost:f}"),
                                        on_step=lambda i: bar.update(), overrides=args.set,
                                        config_file=args.config, val_set=val_set, log=info, logits=logits)
    _print_accuracies(model, (train_set, test_set), logits)
    _closing_summary(run_dir, metrics, config)


def _closing_summary(run_dir, metrics, config):
    """After the lesson's lines (stdout), what the run came to, on stderr: see pipeline/story.py."""
    from pipeline.artifacts import read_json
    from pipeline.story import summary

    info("")
    for line in summary(metrics, read_json(run_dir / "run.json"), run_dir, config.train.num_iterations,
                        config.evaluate.threshold_metric):
        info(line)


def cmd_evaluate(args):
    from pipeline.artifacts import latest_run, load_model, read_record, run_config
    from pipeline.evaluate import evaluate
    from pipeline.report import write_run_report
    from pipeline.train import load_splits

    run_dir = Path(args.run) if args.run else _latest(latest_run(), print, "run")
    if not os.path.lexists(run_dir / "config.yaml"):  # a pipe or a link is refused as such by run_config
        raise PipelineError(f"{run_dir}: not a run folder (no config.yaml)"
                            + ("; it is a sweep folder: pick one of its runs" * (run_dir / "summary.csv").is_file()))
    config = run_config(run_dir, args.set)
    # the config's threshold, so that `--set evaluate.threshold=...` changes the metrics as well as the report
    # (auto: the one chosen on validation when training, stored in the model)
    model = load_model(run_dir)  # the folder: its model.npz must be a file of it
    if config.evaluate.threshold != "auto":
        model = dataclasses.replace(model, threshold=config.evaluate.threshold)
    train_set, val_set, test_set = load_splits(config, **_prepare_options(args))
    logits = {}  # each split's Z (1, m), computed once
    path = read_record(run_dir).get("training", {}).get("l2_path")  # l2 auto's path, kept in metrics.json
    evaluate(model, train_set, test_set, run_dir, config.evaluate.enlarge, val_set, logits, path)
    write_run_report(run_dir, (train_set, test_set), config, test_logits=logits["test"])
    _print_accuracies(model, (train_set, test_set), logits)
    info(f"rewrote {run_dir / 'metrics.json'}, {run_dir / 'misclassified'} and {run_dir / 'report.html'}")


def cmd_report(args):
    from pipeline.artifacts import latest_run
    from pipeline.report import write_report

    info(f"wrote {write_report(Path(args.run) if args.run else _latest(latest_run(), info, 'run'), args.set)}")


def cmd_predict(args):
    from pipeline.artifacts import latest_run, load_model
    from pipeline.config import open_unit
    from pipeline.predict import find_images, human_line, predict_files, to_csv, to_json

    if args.model is None:  # named on stdout, unless stdout is --json or --csv that a program reads
        args.model = _latest(latest_run(), info if args.json or args.csv else write)
    model = load_model(args.model)
    threshold = model.threshold if args.threshold is None else args.threshold
    if open_unit(threshold):
        raise PipelineError(f"--threshold {threshold}: {open_unit(threshold)}")
    if args.save_input and Path(args.save_input).exists() and not Path(args.save_input).is_dir():
        raise PipelineError(f"--save-input {args.save_input}: exists and is not a folder")
    if args.save_input and args.explain and Path(args.save_input).resolve() == Path(args.explain).resolve():
        raise PipelineError(f"--explain {args.explain}: the same folder as --save-input, whose files have the same "
                            "names; give each its own folder")
    seen = _explainer(args, model, threshold) if args.explain else None
    images, problems, skipped = find_images(args.paths)
    for path in skipped:
        info(f"note: {path}: skipped, not an image file name")
    for problem in problems:
        info(f"error: {problem}")
    results = []
    with progress(args, images, desc="predict", unit="img") as bar:
        for path, outcome in predict_files(model, bar, args.fit or model.fit, args.resample or model.resample,
                                           threshold, args.save_input, seen):
            if isinstance(outcome, PipelineError):
                problems.append(outcome)
                info(f"error: {outcome}")
            else:
                results.append(outcome)
                if not (args.json or args.csv):
                    write(human_line(outcome))
    if args.json or args.csv:
        sys.stdout.write(to_json(results) if args.json else to_csv(results))
    if problems and results:
        info(f"{len(results)} predicted, {len(problems)} failed (see above)")
    return 0 if not problems else 3 if results else 1


def _explainer(args, model, threshold):
    """predict --explain DIR: a function writing each image's explanation into DIR (see pipeline/explain.py)."""
    from pipeline.explain import write_explanation

    folder = Path(args.explain)
    if folder.exists() and not folder.is_dir():
        raise PipelineError(f"--explain {folder}: exists and is not a folder")
    return lambda k, path, pixels: write_explanation(folder, k, path, model, pixels, threshold)


def cmd_serve(args):
    from pipeline.artifacts import latest_run
    from pipeline.serve import serve

    if args.model is None:
        args.model = _latest(latest_run(), info)
    serve(Path(args.model), args.host, args.port, log=info)


def cmd_sweep(args):
    from pipeline import sweep
    from pipeline.artifacts import claim_dir, new_run_dir
    from pipeline.report import write_sweep_report

    if args.resume and (args.set or args.sweep_dir):
        raise PipelineError(f"--resume {args.resume}: --set and --sweep-dir cannot change a sweep being resumed")
    config_file = sweep.sweep_file(args.resume) if args.resume else Path(args.config)
    points, resolved = sweep.plan(config_file, args.set)
    data = sweep.load_all(points)  # before the sweep folder is claimed: a missing file leaves nothing behind
    sweep_dir = claim_dir(args.resume, "--resume") if args.resume else \
        new_run_dir(config_file.stem, args.sweep_dir, "--sweep-dir")
    if not args.resume:
        write_text(sweep_dir / sweep.SWEEP_FILE, f"# resolved from {' '.join([config_name(config_file), *args.set])}\n{resolved}")
    with progress(args, total=len(points), desc="sweep", unit="run") as bar:
        def done(name, error):
            bar.update()
            info(f"{sweep_dir / name}: {'failed: ' + error if error else 'done'}")
        failed = None
        try:
            rows = sweep.run(sweep_dir, points, data, args.jobs, args.set, config_file, on_done=done)
        except sweep.PointsFailed as e:  # the table and the report are still written, the failed points marked
            rows, failed = e.rows, e
        except KeyboardInterrupt:
            info(f"{sweep_dir}: interrupted; finished runs are kept; "
                 f"finish with: {args.prog} sweep --resume {sweep_dir}")
            raise
    print(sweep.markdown(rows), end="")
    if any(row["status"] == "done" for row in rows):
        info(f"wrote {write_sweep_report(sweep_dir)}")
    info(f"sweep folder: {sweep_dir}")
    if failed:
        raise failed


def cmd_demo_photos(args):
    from pipeline.demo import generate

    paths = generate(args.folder, args.count, args.min_px, args.max_px)
    print(f"wrote {len(paths)} JPEGs into {Path(args.folder) / 'cat'} and {Path(args.folder) / 'non-cat'}")


def cmd_compare(args):
    from pipeline.compare import compare, render, run_dirs

    print(render(compare(run_dirs(args.paths)), "md" if args.md else "json" if args.json else "text"))


def _latest(run_dir, say, what="model"):
    """The latest run, after saying (say: print or info) which it is and when it was trained."""
    from pipeline.artifacts import trained_at

    say(f"{what}: {run_dir} (the latest run, trained {trained_at(run_dir)})")
    return run_dir


def _print_accuracies(model, splits, logits):
    """The lesson's closing lines, computed as the lesson computes them (from logits {split name: Z (1, m)})."""
    from pipeline.evaluate import lesson_accuracy

    for name, split in zip(("train", "test"), splits):
        print(f"{name} accuracy: {lesson_accuracy(split.y, logits[name], model.threshold)} %")


def _config_help():
    names = ", ".join(sorted(p.stem for p in PACKAGED.glob("*.yaml")))
    return f"YAML config file, or the name of a config shipped with the package: {names} (default: default)"


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got '{text}'")
    return int(text)


def _port(text):
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got '{text}'")
    return int(text)


def _global_flags(parser, default):
    """--debug and --quiet, accepted before the command (default False) and after it (default SUPPRESS, so
    that the subcommand does not reset a flag given before it)."""
    parser.add_argument("--debug", action="store_true", default=default, help="show the full traceback of an error")
    parser.add_argument("--quiet", action="store_true", default=default, help="no progress bar")


def build_parser(prog="catneuron"):
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, argparse.SUPPRESS)
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                             help="override one config key (repeatable); VALUE is read as YAML "
                                  "(a text key takes the text as given where YAML reads something else)")

    parser = argparse.ArgumentParser(prog=prog,
                                     description="The lesson's single-neuron cat/non-cat classifier, stage by stage.",
                                     epilog="Exit codes: 0 success, 1 error (one line on stderr), 2 usage, 3 predict read only some "
                                            "inputs, 130 interrupted, 143 terminated, 141 stdout closed by its reader.")
    parser.add_argument("--version", action="version", version=__version__)
    _global_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", parents=[common], help="download the course's HDF5 files, sha256-checked")
    p.add_argument("--from", dest="source", metavar="SOURCE",
                   help="an http(s):// or file:// URL or a local folder holding the two files")
    p.add_argument("--dest", default="data/raw", help="where to put them (default: data/raw)")
    p.set_defaults(func=cmd_fetch)

    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument("--workers", type=_positive_int, metavar="N",
                         help="processes decoding a folder dataset's images (default: all cores)")

    p = sub.add_parser("prepare", parents=[common, with_config, workers],
                       help="turn the image folders of a folder config into data/processed/<name>/*.h5")
    p.add_argument("--config", required=True,
                   help="YAML config with data.source: folder (e.g. folder_example, a packaged config)")
    p.add_argument("--force", action="store_true", help="prepare again even when nothing changed")
    p.add_argument("--strict", action="store_true", help="fail on any file that cannot be used")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("audit", parents=[common, with_config, workers],
                       help="duplicates within and across splits, class balance, label conflicts")
    p.add_argument("--config", default="default", help=_config_help())
    p.add_argument("--json", action="store_true", help="print the audit as JSON")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("train", parents=[common, with_config, workers], help="train the neuron, write a run folder")
    p.add_argument("--config", default="default", help=_config_help())
    p.add_argument("--run-dir", help="the run folder to write (new or empty; default: runs/<config>-<time>)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", parents=[common, with_config],
                       help="re-evaluate a run's model, rewrite its metrics and misclassified images")
    p.add_argument("--run", help="the run folder (default: the latest run under runs/)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", parents=[common], help="classify image files and folders with a trained model",
                       epilog="Exit codes: 0 every image predicted, 1 nothing predicted (or a bad model/option), "
                              "3 some inputs could not be read (each named on stderr), 2 usage.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="an image file, or a folder searched recursively")
    p.add_argument("--model", help="a run folder or its model.npz (default: the latest run under runs/)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON list of {path, label, probability}")
    output.add_argument("--csv", action="store_true", help="CSV with the columns path,label,probability")
    p.add_argument("--threshold", type=float, help="predict cat above this probability (default: the model's)")
    p.add_argument("--fit", choices=FITS, help="squash, crop or pad to the model's size (default: the model's)")
    p.add_argument("--resample", choices=RESAMPLES, help="resize filter (default: the model's)")
    p.add_argument("--save-input", metavar="DIR", help="write the exact RGB image the model saw for each input")
    p.add_argument("--explain", metavar="DIR", help="write each input's explanation there: a PNG of what the "
                   "neuron saw, each pixel's contribution and the weights, and a JSON (see docs/explain.md)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", parents=[common],
                       help="a local page to drop a photo on: label, p and why (Ctrl-C stops)")
    p.add_argument("--model", help="a run folder or its model.npz (default: the latest run under runs/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="the port (default: 8000; 0 picks a free one)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("sweep", parents=[common, with_config],
                       help="train one run per point of a config's sweep: grid, with a summary table")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--config", default="lr_sweep",
                       help="YAML config with a sweep: block, or a packaged config's name (default: lr_sweep, "
                            "the lesson's learning rates)")
    which.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted sweep in its folder")
    p.add_argument("--sweep-dir", help="the sweep folder to write (new or empty; default: runs/<config>-<time>)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="grid points trained in parallel processes (default: 1)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare", parents=[common], help="runs side by side: differing config values, metrics")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run folders or sweep folders")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--md", action="store_true", help="a markdown table")
    form.add_argument("--json", action="store_true", help="JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", parents=[common, with_config],
                       help="rebuild report.html and the pictures of a run folder, or report.html of a sweep folder")
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a run or sweep folder (default: the latest run)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo-photos", parents=[common],
                       help="write a demo folder of generated photos (orange cat faces, blue-grey boxes) to train on")
    p.add_argument("folder", metavar="DIR", help="the folder to create, e.g. data/photos (it must not exist)")
    p.add_argument("--count", type=_positive_int, default=400, help="photos, half of each class (default: 400)")
    p.add_argument("--min-px", type=_positive_int, default=300, help="smallest long side in pixels (default: 300)")
    p.add_argument("--max-px", type=_positive_int, default=900, help="largest long side in pixels (default: 900)")
    p.set_defaults(func=cmd_demo_photos)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that every cleanup written for Ctrl-C runs for it too."""


def _terminate(signum, frame):
    raise Terminated


_interrupted = threading.Event()  # main caught an interrupt: the program is ending, nothing to redeliver


def _redeliver(unraisable, default=sys.unraisablehook):
    """An interrupt raised inside a callback whose errors Python ignores (a weakref's, a __del__) would be
    lost and the program go on: send the signal again, from another thread, to land after the callback,
    unless main has caught an interrupt meanwhile (a second one would kill the exiting program by signal)."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        again = threading.Timer(0.01, lambda: _interrupted.is_set() or os.kill(os.getpid(), signum))
        again.daemon = True  # the exit never waits for it
        again.start()
    else:
        default(unraisable)


def main(argv=None, prog="catneuron"):
    """The command line; prog is the name the help shows (`python -m pipeline` when run so)."""
    args = build_parser(prog).parse_args(argv)
    args.prog = prog  # for messages that name a command to run
    signal.signal(signal.SIGTERM, _terminate)
    sys.unraisablehook = _redeliver
    # forked workers (sweep --jobs) keep the default: their parent stops them with SIGTERM and cleans up
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    if not args.debug:  # numpy's overflow notes, Pillow's EXIF complaints: noise to a user, shown with --debug
        warnings.simplefilter("ignore")
        os.environ["PYTHONWARNINGS"] = "ignore"  # the same in worker processes, which start afresh
    try:
        if getattr(args, "config", None):
            args.config = str(find_config(args.config))  # a packaged config's name -> its file
        code = args.func(args)
    except KeyboardInterrupt as e:
        _interrupted.set()
        print("terminated" if isinstance(e, Terminated) else "interrupted", file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed reader: nothing more to say
                stream.flush()
        # every cleanup has run (finally blocks, held signals): end here, as the exit code says, rather than in
        # the interpreter's shutdown, where an interrupt still pending would make it die by the signal instead
        os._exit(143 if isinstance(e, Terminated) else 130)
    except BrokenPipeError:  # the reader went away (`... | head`): not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141
    except (PipelineError, OSError, MemoryError) as e:
        if args.debug:
            raise
        message = printable(_one_line(e)) or type(e).__name__
        # one readable line, whatever a file managed to get into the message
        print(f"error: {message[:ERROR_MAX]}{'...' * (len(message) > ERROR_MAX)}", file=sys.stderr)
        return 1
    return code or 0


def _one_line(error):
    """`path: No space left on device` rather than Python's `[Errno 28] No space left on device: 'path'`."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        name = str(error.filename)
        if len(name) > NAME_SHOWN:  # a path made long on purpose: the reason after it must still show
            name = f"{name[:NAME_SHOWN // 2]}...{name[-NAME_SHOWN // 2:]}"
        return f"{name}: {error.strerror}"
    return str(error)
