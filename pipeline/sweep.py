"""The sweep stage: one ordinary run folder per point of a grid of config values, and a summary of them.

<sweep_dir>/sweep.yaml        the resolved config with its sweep: block (`sweep --config` it to repeat)
<sweep_dir>/<point>/          a run folder as `train` writes it, named from the swept values: lr0.01
<sweep_dir>/summary.csv, .md  one row per point: the swept values, status, cost, accuracies, log losses (and the
                              validation metrics when there is a validation split), duration, and `best`: empty
                              except on the best run by the validation metric evaluate.rank_by (on every run
                              tied best, within TIE), where it names that metric (never chosen by test metrics;
                              with no validation split no run is best)

A point is trained in <point>.incomplete/ and renamed when its run.json is written, so a folder named after
a point is always a finished run; an interrupted point keeps its .incomplete name until `--resume` redoes it.
"""
import csv
import io
import itertools
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline import PipelineError, runfiles
from pipeline.artifacts import read_run
from pipeline.config import Config, check_key, dump_config, load_experiment, with_values
from pipeline.files import write_text
from pipeline.names import quote, safe_name
from pipeline.train import load_splits, train
from pipeline.workers import Workers

SWEEP_FILE = "sweep.yaml"
INCOMPLETE = ".incomplete"
SHORT = {"train.learning_rate": "lr", "train.num_iterations": "it", "features.scaling": "", "train.l2": "l2=",
         "evaluate.threshold": "t"}  # folder-name prefixes; other keys use their own name
POINT_NAME_MAX = 120  # characters of a point's folder name
MAX_POINTS = 1000  # runs in one sweep: a few lists of a few values; a bigger grid is a typo or an attack
COLUMNS = ["final_cost", "train_accuracy", "test_accuracy", "train_log_loss", "test_log_loss", "duration_s"]
TIE = 1e-9  # validation metrics equal within this (relative) are a tie: every tied run is marked best
VALIDATION_COLUMNS = ["validation_accuracy", "validation_majority_accuracy", "validation_log_loss",
                      "validation_roc_auc"]


class PointsFailed(PipelineError):
    """Some points of a sweep failed; rows is the summary written anyway (the failed points marked)."""

    def __init__(self, message, rows):
        super().__init__(message)
        self.rows = rows


@dataclass(frozen=True)
class Point:
    name: str  # the run folder's name, from the swept values
    values: dict  # dotted key -> value
    config: Config


def sweep_file(sweep_dir):
    """The resolved config of the sweep in sweep_dir, refusing a folder that is not a sweep."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not os.path.lexists(path):
        raise PipelineError(f"{sweep_dir}: not a sweep folder (no {SWEEP_FILE})")
    runfiles.check(path)  # a file of the sweep folder: a link out of it is refused (the config loader does the rest)
    return path


def plan(config_file, overrides=()):
    """(points, resolved YAML text) of the experiment config at config_file with the --set overrides applied."""
    config, sweep = load_experiment(config_file, overrides)
    if not sweep:
        raise PipelineError(f"{config_file}: no sweep: block (e.g. sweep: {{train.learning_rate: [0.01, 0.001]}}); "
                            "use `train` for a single run")
    for override in overrides:
        if isinstance(sweep, dict) and override.partition("=")[0].strip() in sweep:
            raise PipelineError(f"--set {override}: {config_file} sweeps this key; change its sweep: list instead")
    points = grid(config, sweep, str(config_file))
    return points, dump_config(config) + yaml.safe_dump({"sweep": sweep}, sort_keys=False)


def grid(config, sweep, where):
    """The points of a sweep block {dotted key: [values]}: the product of its lists, in order, validated."""
    if not isinstance(sweep, dict) or not sweep:
        raise PipelineError(f"{where}: sweep must map section.key to a list of values, "
                            "e.g. train.learning_rate: [0.01, 0.001]")
    for key, values in sweep.items():
        check_key(key, f"{where}: sweep")
        if not isinstance(values, list) or not values:
            raise PipelineError(f"{where}: sweep: {key} must be a non-empty list of values, got {quote(values)}")
    size = math.prod(len(values) for values in sweep.values())
    if size > MAX_POINTS:
        raise PipelineError(f"{where}: sweep: the grid has {size} points, over the limit of {MAX_POINTS} runs")
    points = []
    for combo in itertools.product(*sweep.values()):
        values = dict(zip(sweep, combo))
        points.append(Point(point_name(values), values, with_values(config, values, f"{where}: sweep")))
    names = [p.name for p in points]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PipelineError(f"{where}: sweep: two points would share the run folder {twice[0]}; list each value once")
    return points


def point_name(values):
    """{"train.learning_rate": 0.01, "features.scaling": "standardize"} -> "lr0.01_standardize"."""
    parts = [SHORT.get(key, key.split(".")[-1]) + str(value) for key, value in values.items()]
    return safe_name("_".join(parts), limit=POINT_NAME_MAX)  # grid refuses two points cut to one name


def load_all(points):
    """{DataConfig: (train, validation or None, test)}: the data of every point, each distinct one loaded once,
    to be shared."""
    data = {}
    for p in points:
        if p.config.data not in data:
            data[p.config.data] = load_splits(p.config)
    return data


def run(sweep_dir, points, data, jobs=1, overrides=(), config_file=None, on_done=None):
    """Train every point without a finished run folder in sweep_dir, jobs at a time; return the summary rows.

    data is load_all(points), shared by all runs. On Ctrl-C the finished runs are kept, the
    interrupted ones marked incomplete in the summary, and KeyboardInterrupt raised again. A point whose
    training fails is recorded as failed and the others still run; PointsFailed (with the rows) is raised at
    the end.
    """
    sweep_dir = Path(sweep_dir)
    status = {p.name: "done" if (sweep_dir / p.name / "run.json").is_file() else "pending" for p in points}
    todo = [p for p in points if status[p.name] != "done"]
    _check_leftovers(sweep_dir, todo)
    tasks = [(p, sweep_dir, [*overrides, *(f"{k}={v}" for k, v in p.values.items())], config_file) for p in todo]
    errors, pool = {}, None
    try:
        if jobs == 1:
            _share(data)
            results = (_run_point(task) for task in tasks)
        else:  # the workers get the loaded data once, when they start (forked: not even copied)
            pool = Workers(max(1, min(jobs, len(tasks))), _share, (data,))
            results = pool.imap(_run_point, tasks, ordered=False)
        for name, error in results:
            status[name] = "failed" if error else "done"
            if error:
                errors[name] = error
            write_summary(sweep_dir, points, status)
            if on_done:
                on_done(name, error)
    except KeyboardInterrupt:
        if pool:
            pool.close()  # the runs in progress are abandoned in their .incomplete folders
        pending = [p.name for p in todo if status[p.name] == "pending"]
        for name in pending if pool else pending[:1]:  # one at a time, only the first had started
            if (sweep_dir / name / "run.json").is_file():
                status[name] = "done"  # finished just before its result reached us
            elif pool is None or (sweep_dir / (name + INCOMPLETE)).exists():
                status[name] = "incomplete"
        write_summary(sweep_dir, points, status)
        raise
    finally:
        if pool:
            pool.close()
    rows = write_summary(sweep_dir, points, status)
    if errors:
        name, error = next(iter(errors.items()))
        raise PointsFailed(f"{sweep_dir}: {len(errors)} of {len(points)} runs failed; {name}: {error}", rows)
    return rows


def _check_leftovers(sweep_dir, todo):
    """Refuse, before any point starts, a <point>.incomplete that an interrupted sweep did not leave (a link,
    a file, a pipe): it is removed and replaced when its point runs again, and only a folder of ours may be."""
    for p in todo:
        folder = sweep_dir / (p.name + INCOMPLETE)
        if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
            raise PipelineError(f"{folder}: refused: not the folder of an interrupted point (a link or a file); "
                                "remove it and resume again")
        if os.path.lexists(sweep_dir / p.name):  # a point's folder is a finished run, renamed once run.json was written
            raise PipelineError(f"{sweep_dir / p.name}: refused: not a finished run (its run.json is not a file); "
                                "remove it and resume again")


_DATA = {}  # DataConfig -> (train, test) Datasets, loaded once by the parent


def _share(data):
    _DATA.update(data)


def _run_point(task):
    """Train one point into <name>.incomplete/, then rename it: (name, None) or (name, error message)."""
    point, sweep_dir, overrides, config_file = task
    train_set, val_set, test_set = _DATA[point.config.data]
    folder = sweep_dir / (point.name + INCOMPLETE)
    if folder.exists():
        shutil.rmtree(folder)  # left by an interrupted sweep
    try:
        train(point.config, train_set, test_set, point.name, folder, overrides=overrides, config_file=config_file,
              val_set=val_set)
    except (PipelineError, OSError, MemoryError) as e:  # what cli.main reports: the other points still run
        shutil.rmtree(folder, ignore_errors=True)
        return point.name, str(e)
    folder.rename(sweep_dir / point.name)
    return point.name, None


def write_summary(sweep_dir, points, status):
    """summary.csv (full precision) and summary.md (rounded, percentages, and which run is best and why);
    returns the rows as dicts."""
    rank_by = "validation_" + points[0].config.evaluate.rank_by
    validated = any(p.config.data.val_fraction for p in points)
    columns = COLUMNS[:-1] + (VALIDATION_COLUMNS + [rank_by] * (rank_by not in VALIDATION_COLUMNS)) * validated
    rows = []
    for p in points:
        row = {"run": p.name, **p.values, "status": status[p.name], **dict.fromkeys(columns + ["duration_s"], "")}
        if status[p.name] == "done":
            _, metrics, record = read_run(sweep_dir / p.name)
            row.update({k: metrics.get(k, "") for k in columns}, duration_s=record.get("duration_s", ""))
        rows.append({**row, "best": ""})
    ranked = [r for r in rows if validated and r["status"] == "done" and isinstance(r[rank_by], (int, float))]
    if ranked:  # log loss: lower is better; the other metrics: higher
        sign = 1 if rank_by.endswith("log_loss") else -1
        top = min(sign * r[rank_by] for r in ranked)
        for r in ranked:  # every run tied with the best is marked: which of them comes first says nothing
            if abs(sign * r[rank_by] - top) <= TIE * max(abs(top), 1e-300):
                r["best"] = rank_by
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(Path(sweep_dir) / "summary.csv", buf.getvalue())
    write_text(Path(sweep_dir) / "summary.md", markdown(rows))
    return rows


def markdown(rows):
    """The summary rows as a markdown table (accuracies in %, costs to 6 decimals) and a line saying which run
    is best on validation, or why none is."""
    def cell(key, value):
        if value == "" or not isinstance(value, float) or not (key in COLUMNS or key.startswith("validation_")):
            return str(value)
        return f"{100 * value:.2f} %" if key.endswith("accuracy") else f"{value:.6f}" if key != "duration_s" \
            else f"{value:.1f} s"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(k, row[k]) for k in header) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + best_line(rows) + "\n"


def best_line(rows):
    """Which run is best on validation (by the metric named in its `best` cell), or why no run is marked."""
    best = [r for r in rows if r["best"]]
    if len(best) > 1:
        metric = best[0]["best"]
        return (f"best on validation: a tie of {len(best)} runs, {', '.join(r['run'] for r in best)} "
                f"({metric} {best[0][metric]:.6g}, equal within {TIE:g})")
    if best:
        metric = best[0]["best"]
        return f"best on validation: {best[0]['run']} ({metric} {best[0][metric]:.6g})"
    if "validation_log_loss" not in rows[0]:
        return ("no run marked best: there is no validation split (data.val_fraction is 0), and choosing "
                "settings by test metrics would fit them to the test set")
    return "no run marked best: no finished run has the validation metric"
