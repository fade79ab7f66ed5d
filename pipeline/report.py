"""report.html for a run folder (and for a folder of runs, a sweep), plus its pictures as standalone files."""
import os
from pathlib import Path

import numpy as np

from pipeline import PipelineError, data, page, runfiles, story
from pipeline.artifacts import load_model, read_costs, read_metrics, read_record, read_run, run_config
from pipeline.curves import auc, average_precision, both_classes, pr_curve, roc_curve
from pipeline.explain import report_section
from pipeline.files import png_bytes, write_bytes, write_png, write_text
from pipeline.gallery import galleries
from pipeline.model import sigmoid
from pipeline.pictures import confusion_image, weights_image
from pipeline.plots import line_chart, png, svg

WIDE = (1100, 440)  # a chart as wide as the page's column (page.STYLE: body max-width)
SMALL = (536, 400)  # the ROC and precision-recall charts, side by side in that column
READ_WEIGHTS = ("Each pixel is the weight the neuron gives to that pixel's red, green and blue values, drawn "
                "on its own channel: mid-grey is a weight of 0, brighter than grey pushes the prediction "
                "towards {1}, darker pushes it towards {0}, and white and black are the largest weights either "
                "way. Shapes that stand out are what the neuron looks at; speckle everywhere means it learned "
                "pixels of individual training images rather than a general pattern.")


def write_report(folder, overrides=()):
    """report.html for a run folder (one with config.yaml) or a sweep folder (run folders inside it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"{folder}: no such folder")
    if os.path.lexists(folder / "config.yaml"):  # a pipe or a link out is refused as such by run_config
        return write_run_report(folder, config=run_config(folder, overrides))
    runs = run_folders(folder)
    if not runs:
        raise PipelineError(f"{folder}: not a run folder (no config.yaml) nor a sweep folder (no run folders in it)")
    if not any((folder / name).is_file() for name in ("sweep.yaml", "summary.csv")):  # e.g. runs/ itself
        raise PipelineError(f"{folder}: a folder of runs, not a sweep (no sweep.yaml); report one run, e.g. "
                            f"{runs[-1]}, or compare several with `compare`")
    return write_sweep_report(folder, run_config(runs[0], overrides).report.cost_scale)


def write_run_report(run_dir, splits=None, config=None, record=None, test_logits=None):
    """Write report.html and the standalone pictures of a run folder; return the report's path.

    splits (train, test Datasets) and config default to what the run folder's config.yaml names; the report
    reads only the test images, and a folder dataset is taken as prepared (never rebuilt here). record is the
    run's record: provenance and what training chose (default: its run.json, which train writes after the report).
    test_logits (1, m) are the saved model's on the test images when the caller has them (evaluate computed them).
    """
    run_dir = Path(run_dir)
    config = config or run_config(run_dir)
    if record is None and os.path.lexists(run_dir / "run.json"):
        record = read_record(run_dir)
    training = (record or {}).get("training")
    training = training if isinstance(training, dict) else {}
    model = load_model(run_dir)  # the folder: its model.npz must be a file of it
    metrics = read_metrics(run_dir / "metrics.json")
    iterations, costs, val_costs = read_costs(run_dir / "costs.csv", config.report.cost_scale == "log", True)
    if splits is None:
        splits = saved_splits(config)
    train_set, test_set = splits
    P = model.predict_proba(test_set.x) if test_logits is None else sigmoid(test_logits)  # (1, m)

    kept = _kept_iteration(training, iterations)
    series = [("training", iterations, costs), ("validation", iterations, val_costs)] if val_costs else \
        [("", iterations, costs)]
    cost = line_chart(series, "Cost during training", "iteration", "cost", log_y=config.report.cost_scale == "log",
                      size=WIDE, marker=kept and (kept[0], f"kept: iteration {kept[0]}"))
    write_text(run_dir / "cost_curve.svg", svg(cost))
    write_png(run_dir / "cost_curve.png", png(cost))
    confusion = png_bytes(confusion_image({"train": metrics["train"]["confusion"],
                                           "test": metrics["test"]["confusion"]}, model.classes))
    write_bytes(run_dir / "confusion.png", confusion)
    weights = png_bytes(weights_image(model.w, model.image_shape, config.evaluate.enlarge))
    write_bytes(run_dir / "weights.png", weights)
    curves, auc_row = _curves(run_dir, test_set.y, P)

    (tn, fp), (fn, tp) = metrics["test"]["confusion"]
    glance = (f"{story.verdict(metrics, model.classes)} Train accuracy {page.percent(metrics['train']['accuracy'])}, "
              f"test accuracy {page.percent(metrics['test']['accuracy'])}: {fn} {model.classes[1]} images missed and "
              f"{fp} {model.classes[0]} images taken for {model.classes[1]}, out of {tn + fp + fn + tp}."
              f"{_untrained(training)}{_flattered(_duplicates(config))}")
    mistakes, confident = galleries(test_set, P, model)
    return _write(run_dir / "report.html", page.document(
        f"Run {run_dir.name}",
        page.section("overview", "Overview", page.paragraph(glance, "glance"), _metrics_table(metrics, auc_row)),
        page.section("threshold", "The threshold", page.paragraph(_threshold(training, model, config))),
        page.section("cost", "How training went: the cost curve",
                     page.paragraph(_training_words(config, training, iterations, costs, kept)),
                     page.svg_img(svg(cost), "cost by iteration")),
        *_l2_section(run_dir, training.get("l2_path")),
        mistakes,
        page.section("weights", "What the neuron learned: the weights w as an image",
                     page.img(weights, "image/png", "weights as an image", css_class="pixels"),
                     "<p>negative <span class=scale></span> positive</p>",
                     page.paragraph(READ_WEIGHTS.format(*model.classes))),
        report_section(test_set, P, model, config.evaluate.enlarge),
        page.section("confusion", "Confusion matrices", page.img(confusion, "image/png", "confusion matrices")),
        page.section("curves", "ROC and precision-recall curves (test set)", *curves),
        confident,
        page.section("settings", "Data and settings", _settings(config, splits, model, metrics)),
        page.section("provenance", "Provenance", _provenance(run_dir, record))))


def _kept_iteration(training, iterations):
    """(iteration, its index in costs.csv) of the weights kept by early stopping, else None (the last ones)."""
    best = training.get("best_iteration") if training.get("early_stopping") else None
    return (best, iterations.index(best)) if best in iterations else None


def _threshold(training, model, config):
    """How the threshold was chosen, in words."""
    words = story.threshold_words(training, config.evaluate.threshold_metric) or f"{model.threshold:.4g}"
    return (f"The neuron answers {model.classes[1]} when its probability p of {model.classes[1]} is above "
            f"{words}, and {model.classes[0]} otherwise. Every caption below compares p with it.")


def _training_words(config, training, iterations, costs, kept):
    """The cost section's line: iterations, learning rate, the weights kept and the cost of the kept model."""
    lr = training.get("learning_rate", config.train.learning_rate)  # the rate used; "auto" for an old run
    rate = lr if isinstance(lr, str) or lr is None else f"{lr:.4g}" + " (auto)" * (config.train.learning_rate == "auto")
    ran = iterations[-1] if training.get("stopped_at") is not None else config.train.num_iterations
    cost = (f"The kept weights' training cost (iteration {kept[0]}): {page.number(costs[kept[1]])}" if kept else
            f"The last recorded training cost (iteration {iterations[-1]}): {page.number(costs[-1])}")
    how = _lbfgs(training) or f"{ran} iterations at learning rate {rate}"
    return (f"{how}. Kept: {story.kept_words(training, config.train.num_iterations)}"
            f"{', marked on the curve' * bool(kept)}. {cost}, from {page.number(costs[0])} at iteration 0."
            f"{_descent_end(training)}{_warm_start(training)}")


def _warm_start(training):
    """l2 auto's last fit starts where the path left the chosen l2, not from zeros: its curve is short and flat."""
    if not training.get("l2_auto"):
        return ""
    return (" This curve is the last fit alone: it starts from the weights the l2 path reached at the chosen l2 "
            "(warm start), so it begins near its end; the path itself is below.")


def _write(path, text):
    write_text(path, text)
    return path


def _settings(config, splits, model, metrics):
    train_set, test_set = splits
    used = f"{metrics['train']['count']} training images"  # what training used: the file may hold validation too
    used += f", {metrics['validation']['count']} for validation" if "validation" in metrics else ""
    rows = [("data", f"{train_set.path} ({used}), {test_set.path} ({test_set.m} images)"),
            ("images", f"{' x '.join(map(str, model.image_shape))}, classes {' / '.join(model.classes)}")]
    duplicates = _duplicates(config)
    if duplicates:
        from pipeline.prepare import duplicates_sentence

        rows += [("duplicates", duplicates_sentence(duplicates))]
    rows += list(config.flat().items())
    return page.table(("setting", "value"), rows)


def _duplicates(config):
    """How prepare's split treated duplicates (pipeline/prepare.py), or None for the course files."""
    if config.data.source != "folder":
        return None
    from pipeline.prepare import dataset_dir, read_report

    return read_report(dataset_dir(config.data)).get("duplicates")


def _flattered(duplicates):
    """The glance line's warning when the user's test folder shares images with the training folder."""
    n = (duplicates or {}).get("test_root_leaks")
    return (f" Warning: {n} test image{'s' * (n != 1)} of data.test_root {'are' if n != 1 else 'is'} also in "
            "data.root (exact or near duplicates), so this test score is flattered." if n else "")


def _provenance(run_dir, record=None):
    """What ran, on what, when: the run's record (run.json, pipeline/provenance.py) as a table."""
    path = Path(run_dir) / "run.json"
    if record is None and not path.is_file():
        return page.paragraph(f"No run.json in {run_dir}: this run's provenance was not recorded.")
    r = record if record is not None else read_record(run_dir)
    commit = r.get("git_commit")
    code = f"catneuron {r.get('versions', {}).get('catneuron', '?')}, " + (
        f"git commit {commit}" + (" with uncommitted changes" if r.get("git_dirty") else "") if commit
        else "not from a git checkout")
    rows = [("code version", code),
            ("packages", ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items() if k != "catneuron")),
            ("started", str(r.get("started", "not recorded")).replace("T", " ").replace("+00:00", " UTC")),
            ("duration", f"{r['duration_s']:.2f} s" if isinstance(r.get("duration_s"), (int, float))
             else "not recorded"),
            ("config file", r.get("config_file") or "none (given in code)"),
            ("overrides", " ".join(f"--set {o}" for o in r.get("overrides", [])) or "none"),
            ("config sha256", f"{r.get('config_sha256', 'not recorded')} (of config.yaml)")]
    rows += [(f"data sha256: {Path(name).name}", page.tip(digest, name)) for name, digest in
             r.get("data_sha256", {}).items()] or [("data sha256", "not recorded (trained before it was)")]
    return page.table(("what", "value"), rows, css_class="provenance")


def _lbfgs(training):
    """The glance line's words on an L-BFGS fit (and the l2 path), or "" for gradient descent."""
    if training.get("solver") != "lbfgs" or "converged" not in training:
        return ""
    from pipeline.l2path import sentence

    l2 = f"l2 = {training['l2']:.4g}" + (" (auto: the lowest validation cost of the path below)"
                                         if training.get("l2_auto") else "")
    return f"L-BFGS at {l2}, {sentence(training)}, {training['passes']} passes over the data"


def _descent_end(training):
    """The glance line's sentence on how gradient descent ended (run.json's converged, from train.tol)."""
    if training.get("solver") == "lbfgs" or not isinstance(training.get("converged"), bool):
        return ""
    from pipeline.l2path import sentence

    return (f" Gradient descent {sentence(training)}: its largest gradient component was "
            f"{training['grad_norm']:.2g} (train.tol {training['tol']:g}).")


def _l2_section(run_dir, path):
    """The chart of l2 auto's path (validation cost by l2, the chosen one marked), written as l2_path.svg."""
    if not path:
        return []
    xs, ys = [np.log10(p["l2"]) for p in path], [p["validation_cost"] for p in path]
    chosen = next(p for p in path if p["chosen"])
    x = np.log10(chosen["l2"])
    chart = svg(line_chart([("", xs, ys)], f"Validation cost by l2 (dashed: the chosen l2 = {chosen['l2']:.4g})",
                           "log10 of l2 (stronger regularisation to the right)", "validation cost",
                           reference=((x, min(ys)), (x, max(ys))), size=SMALL))
    write_text(run_dir / "l2_path.svg", chart)
    rows = [(page.number(p["l2"]), str(p["iterations"]), "yes" if p["converged"] else "no",
             page.number(p["train_cost"]), page.number(p["validation_cost"]),
             page.percent(p["validation_accuracy"]), "chosen" * p["chosen"]) for p in path]
    table = page.table(("l2", "iterations", "converged", "train cost", "validation cost", "validation accuracy", ""),
                       rows, numeric=range(0, 6))
    return [page.section("l2", "The regularisation chosen on validation (train.l2 auto)",
                         page.svg_img(chart, "validation cost by l2"), table)]


def _untrained(training):
    """The glance line's warning when early stopping kept the untrained starting point (iteration 0)."""
    if training.get("best_iteration") != 0 or not training.get("early_stopping"):
        return ""
    return " Early stopping kept iteration 0: this model is the untrained starting point (p = 0.5 for every image)."


# metrics.json's keys, in the order and words of the report's table
METRIC_NAMES = {"accuracy": "Accuracy", "majority_accuracy": "Majority baseline", "roc_auc": "ROC AUC",
                "average_precision": "Average precision", "precision": "Precision", "recall": "Recall",
                "f1": "F1", "log_loss": "Log loss", "count": "Images"}


def _metrics_table(metrics, auc_row):
    """Each split's metrics; the baselines sit next to accuracy. Runs from before roc_auc was recorded in
    metrics.json show the test ROC AUC of auc_row."""
    splits = [s for s in ("train", "validation", "test") if s in metrics]
    names = METRIC_NAMES
    rates = ("accuracy", "majority_accuracy", "precision", "recall", "f1")

    def shown(n, v):
        if v is None:
            return "undefined"  # roc_auc of a single-class split
        return page.percent(v) if n in rates else str(v) if n == "count" else page.number(v)
    rows = [(page.tip(names[n], n), *(page.tip(shown(n, metrics[s][n]), metrics[s][n]) for s in splits))
            for n in names if all(n in metrics[s] for s in splits)]  # metrics.json's key in the name's tooltip
    extra = [] if "roc_auc" in metrics["test"] else [auc_row]
    return page.table(("", *(s.capitalize() for s in splits)), rows + extra, numeric=range(1, len(splits) + 1))


def _curves(run_dir, Y, P):
    """ROC and PR charts of the test set (written as roc.svg and pr.svg) and the AUC row of the metrics table."""
    if not both_classes(Y):
        return [page.paragraph("The test set holds a single class: ROC and precision-recall are undefined.")], \
            ("ROC AUC", "", "undefined")
    fpr, tpr = roc_curve(Y, P)
    recall, precision = pr_curve(Y, P)
    area, ap = auc(fpr, tpr), average_precision(recall, precision)
    roc = svg(line_chart([("", fpr, tpr)], f"ROC curve, AUC = {area:.3f}", "false positive rate",
                         "true positive rate", unit_square=True, reference=((0, 0), (1, 1)), size=SMALL))
    rate = float(np.mean(Y == 1))
    pr = svg(line_chart([("", recall, precision)], f"Precision-recall curve, average precision = {ap:.3f}",
                        "recall", "precision", unit_square=True, reference=((0, rate), (1, rate)), size=SMALL))
    write_text(run_dir / "roc.svg", roc)
    write_text(run_dir / "pr.svg", pr)
    note = page.paragraph("Dashed grey: what guessing at random would score.")
    return [f'<div class="row">{page.svg_img(roc, "ROC curve")}{page.svg_img(pr, "precision-recall")}</div>',
            note], ("ROC AUC", "", page.tip(page.number(area), area))


def run_folders(folder):
    """The finished run folders directly inside folder (holding config.yaml and costs.csv, not a sweep's
    `.incomplete` point), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.endswith(".incomplete")
                  and (p / "config.yaml").is_file() and (p / "costs.csv").is_file())


def write_sweep_report(sweep_dir, cost_scale=None):
    """Write report.html, cost_curves.svg and cost_curves.png in sweep_dir; return the report's path.

    The table is summary.csv as the sweep wrote it, or, without one, each run's varying settings and metrics.
    cost_scale (linear or log) defaults to the first run's report.cost_scale.
    """
    sweep_dir = Path(sweep_dir)
    runs = run_folders(sweep_dir) if sweep_dir.is_dir() else []
    if not runs:
        raise PipelineError(f"{sweep_dir}: no run folders (with config.yaml and costs.csv) in it")
    settings = {run: run_config(run).flat() for run in runs}
    varying = [k for k in settings[runs[0]] if len({str(s[k]) for s in settings.values()}) > 1]
    cost_scale = cost_scale or settings[runs[0]]["report.cost_scale"]
    if cost_scale not in ("linear", "log"):
        raise PipelineError(f"{sweep_dir}: cost_scale must be linear or log, got {cost_scale!r}")
    costs = {run: read_costs(run / "costs.csv", cost_scale == "log") for run in runs}
    label = lambda run: ", ".join(f"{k.split('.')[1]}={page.yes_no(settings[run][k])}" for k in varying) or run.name
    chart = line_chart([(label(run), *costs[run]) for run in runs], "Cost by iteration, one line per run",
                       "iteration", "cost", log_y=cost_scale == "log",
                       size=(WIDE[0], max(WIDE[1], 110 + 18 * len(runs))))
    summary = sweep_dir / "summary.csv"
    header, rows = _read_table(summary) if summary.is_file() else _sweep_table(runs, settings, varying)
    write_text(sweep_dir / "cost_curves.svg", svg(chart))
    write_png(sweep_dir / "cost_curves.png", png(chart))
    write_text(sweep_dir / "report.html", page.document(
        f"Sweep {sweep_dir.name}",
        page.section("summary", f"Summary ({len(runs)} runs)", *_summary(header, rows, [r.name for r in runs]),
                     page.paragraph(f"Each run's name links to its own report; hover a number for all its digits"
                                    f"{' (or read summary.csv)' if summary.is_file() else ''}. Settings that differ "
                                    f"between runs: {', '.join(varying) or 'none'}.", "note")),
        page.section("cost", "Cost curves", page.svg_img(svg(chart), "cost curves of every run"))))
    return sweep_dir / "report.html"


def _read_table(path):
    rows = runfiles.read_csv(path)
    if not rows:
        raise PipelineError(f"{path}: empty; expected a header row")
    return rows[0], rows[1:]


def _sweep_table(runs, settings, varying):
    """summary.csv's columns for a folder of runs the sweep command did not write."""
    header = ["run", *varying, "train_accuracy", "test_accuracy", "test_log_loss", "final_cost"]
    rows = []
    for run in runs:
        m = read_run(run)[1]  # final_cost: the kept weights' cost
        rows.append([run.name, *(settings[run][k] for k in varying), m["train_accuracy"], m["test_accuracy"],
                     m["test_log_loss"], m["final_cost"]])
    return header, [[str(v) for v in row] for row in rows]


RATES = ("accuracy", "precision", "recall", "f1")


def _summary(header, rows, runs):
    """The summary table for people: formatted numbers (every digit in a tooltip), the names of runs (of the
    run folders runs) linked to their reports, and the row of the `best` column (the metric the sweep ranked
    by, on the best row) highlighted."""
    best = header.index("best") if "best" in header else None
    keep = [k for k in range(len(header)) if k != best]
    shown = [[_summary_cell(header[k], row[k] if k < len(row) else "", runs) for k in keep] for row in rows]
    names = [page.tip(header[k].split(".")[-1].removesuffix("_s").replace("_", " "), header[k]) for k in keep]
    numeric = [j for j, k in enumerate(keep)
               if header[k] != "run" and any(_float(r[k:k + 1]) is not None for r in rows)]
    top = {i: "best" for i, row in enumerate(rows) if best is not None and best < len(row) and row[best]}
    tied = ", ".join(rows[i][0] for i in top)
    note = [page.paragraph(f"Highlighted: {tied}, the best run by {rows[i][best]}." if len(top) == 1 else
                           f"Highlighted: a tie of {len(top)} runs, {tied}, equal best by {rows[i][best]}.", "note")
            for i in list(top)[:1]]
    table = page.table(names, shown, numeric=numeric, css_class="summary", row_classes=top)
    return [f'<div class="scroll">{table}</div>', *note]  # many swept keys: the table scrolls, not the page


def _float(cells):
    try:
        return float(cells[0])
    except (ValueError, IndexError):
        return None


def _summary_cell(column, text, runs):
    if column == "run":  # only a run folder's own name becomes part of a link
        return page.link(text, f"{text}/report.html") if text in runs else text
    value = _float([text])
    if text in ("True", "False"):  # a swept switch, as summary.csv writes Python's booleans
        return {"True": "Yes", "False": "No"}[text]
    if value is None or "." in column:  # text, or a swept config value (train.learning_rate): as written
        return text
    if column.endswith(RATES) and not column.endswith("average_precision"):  # an area, as in a run's report
        return page.tip(page.percent(value), text)
    if column == "duration_s":
        return page.tip(f"{value:.1f} s", text)
    return page.tip(page.number(value), text) if column.endswith(("cost", "loss", "auc")) else text


def saved_splits(config):
    """The (train, test) Datasets of config as they are on disk, the training images left there (lazy)."""
    if config.data.source == "course":
        return data.load_course(Path(config.data.dir), lazy_train=True)
    from pipeline.prepare import dataset_dir

    folder = dataset_dir(config.data)
    return data.load_split(folder / "train.h5", "train", lazy=True), data.load_split(folder / "test.h5", "test")

