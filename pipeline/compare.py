"""Finished runs side by side: the config values that differ and every metric, with its change from the first run
(accuracies and other shares in %, their changes in percentage points; --json keeps the fractions).

Like `dvc metrics diff`, without git or DVC: the run folders themselves say what they were and what they scored.
"""
import json
import math
import os
from pathlib import Path

from pipeline import PipelineError, runfiles
from pipeline.artifacts import read_run
from pipeline.names import inside, printable


def run_dirs(paths):
    """Each path as a run folder; a sweep folder stands for its finished runs, in grid order."""
    found = []
    for path in map(Path, paths):
        if os.path.lexists(path / "metrics.json"):  # a link or a pipe is refused when it is read
            found.append(path)
        elif os.path.lexists(path / "summary.csv"):
            header, *rows = runfiles.read_csv(path / "summary.csv") or [[]]
            rows = [dict(zip(header, row)) for row in rows]
            done = [inside(path, row["run"]) for row in rows if row.get("status") == "done" and row.get("run")]
            if not done:
                raise PipelineError(f"{path / 'summary.csv'}: the sweep has no finished run yet")
            found += done
        else:
            raise PipelineError(f"{path}: not a run folder (no metrics.json) nor a sweep folder (no summary.csv)")
    return found


def compare(dirs):
    """{"runs": [folder], "params": {dotted key: [value per run]} for the keys that differ,
    "metrics": {name: [value per run]}, "change": {name: [value - first run's value, None for the first]}}.
    """
    runs = [read_run(d) for d in dirs]
    flat = [config.flat() for config, _, _ in runs]
    params = {k: [f[k] for f in flat] for k in flat[0] if len({repr(f[k]) for f in flat}) > 1}
    names = list(dict.fromkeys(name for _, metrics, _ in runs for name in metrics))
    metrics = {n: [m.get(n) for _, m, _ in runs] for n in names}
    change = {n: [None] + [_delta(v, values[0]) for v in values[1:]] for n, values in metrics.items()}
    return {"runs": [str(d) for d in dirs], "params": params, "metrics": metrics, "change": change,
            "converged": [convergence(record) for _, _, record in runs]}


def convergence(record):
    """How a run's fit ended, from its run.json: "yes, 23 iterations", "no (iteration limit), 3000 iterations",
    or "not recorded" for a run from before it was."""
    training = record.get("training") if isinstance(record.get("training"), dict) else {}
    if not isinstance(training.get("converged"), bool) or not isinstance(training.get("iterations"), int):
        return "not recorded"
    if training["converged"]:
        return f"yes, {training['iterations']} iterations"
    return f"no ({printable(str(training.get('stop', 'stopped')))}), {training['iterations']} iterations"


def _delta(value, first):
    return value - first if isinstance(value, (int, float)) and isinstance(first, (int, float)) else None


def _strict(value):
    """value with NaN and infinities (a metrics.json may hold them: Python writes them) as None: JSON has no
    such numbers, and a program reading --json must get JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    return [_strict(v) for v in value] if isinstance(value, (list, tuple)) else value


def table(result):
    """The comparison as rows of cells: a header of runs, then one row per differing key and per metric."""
    rows = [["", *map(printable, result["runs"])]]
    rows += [[printable(key), *map(_fmt, values)] for key, values in result["params"].items()]
    rows.append(["converged", *result["converged"]])
    for name, values in result["metrics"].items():  # names from metrics.json: an escape or a newline is data
        deltas = result["change"][name]
        rate = is_rate(name)
        rows.append([printable(name), *(_fmt(v, rate) + ("" if d is None else f" ({_change(d, rate)})")
                             for v, d in zip(values, deltas))])
    return rows


RATES = ("accuracy", "precision", "recall", "f1")  # shown in %, as the terminal and the reports show them


def is_rate(name):
    """Whether the metric (train_accuracy, test_f1, ...) is a share, shown in %: not an area (roc_auc,
    average_precision), a cost or a loss."""
    return name.endswith(RATES) and not name.endswith("average_precision")


def _change(delta, rate):
    return f"{100 * delta:+.2f} points" if rate else f"{delta:+.6g}"


def _fmt(value, rate=False):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and rate:
        return f"{100 * value:.2f} %"
    return f"{value:.6g}" if isinstance(value, float) else printable(value)  # config values may hold newlines


def render(result, form="text"):
    """The comparison as aligned text, a markdown table (form="md") or JSON (form="json")."""
    if form == "json":
        return json.dumps(_strict(result), indent=2, allow_nan=False)
    rows = table(result)
    if form == "md":
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join([lines[0], "|" + " --- |" * len(rows[0]), *lines[1:]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
