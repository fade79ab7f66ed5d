"""report.html for a run folder (and for a folder of runs, a sweep), plus its pictures as standalone files."""
import csv
from pathlib import Path

import numpy as np

from pipeline import PipelineError, data, page
from pipeline.artifacts import load_model, read_costs, read_json, read_metrics
from pipeline.config import load_config
from pipeline.curves import auc, average_precision, both_classes, pr_curve, roc_curve
from pipeline.files import png_bytes, write_bytes, write_png, write_text
from pipeline.gallery import galleries
from pipeline.pictures import confusion_image, weights_image
from pipeline.plots import line_chart, png, svg

SMALL = (520, 400)  # size of the ROC and precision-recall charts, side by side on a page
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
    if (folder / "config.yaml").is_file():
        return write_run_report(folder, config=load_config(folder / "config.yaml", overrides))
    runs = run_folders(folder)
    if not runs:
        raise PipelineError(f"{folder}: not a run folder (no config.yaml) nor a sweep folder (no run folders in it)")
    return write_sweep_report(folder, load_config(runs[0] / "config.yaml", overrides).report.cost_scale)


def write_run_report(run_dir, splits=None, config=None, training=None):
    """Write report.html and the standalone pictures of a run folder; return the report's path.

    splits (train, test Datasets) and config default to what the run folder's config.yaml names; the report
    reads only the test images, and a folder dataset is taken as prepared (never rebuilt here). training
    (what training chose, as run.json records it) defaults to run.json's.
    """
    run_dir = Path(run_dir)
    config = config or load_config(run_dir / "config.yaml")
    if training is None and (run_dir / "run.json").is_file():
        training = read_json(run_dir / "run.json").get("training")
    training = training if isinstance(training, dict) else {}
    model = load_model(run_dir / "model.npz")
    metrics = read_metrics(run_dir / "metrics.json")
    iterations, costs, val_costs = read_costs(run_dir / "costs.csv", config.report.cost_scale == "log", True)
    if splits is None:
        splits = _saved_splits(config)
    train_set, test_set = splits
    P = model.predict_proba(test_set.x)  # (1, m)

    series = [("training", iterations, costs), ("validation", iterations, val_costs)] if val_costs else \
        [("", iterations, costs)]
    cost = line_chart(series, "Cost during training", "iteration", "cost", log_y=config.report.cost_scale == "log")
    write_text(run_dir / "cost_curve.svg", svg(cost))
    write_png(run_dir / "cost_curve.png", png(cost))
    confusion = png_bytes(confusion_image({"train": metrics["train"]["confusion"],
                                           "test": metrics["test"]["confusion"]}, model.classes))
    write_bytes(run_dir / "confusion.png", confusion)
    weights = png_bytes(weights_image(model.w, model.image_shape, config.evaluate.enlarge))
    write_bytes(run_dir / "weights.png", weights)
    curves, auc_row = _curves(run_dir, test_set.y, P)

    (tn, fp), (fn, tp) = metrics["test"]["confusion"]
    lr = training.get("learning_rate", config.train.learning_rate)  # the rate used; "auto" for an old run
    rate = lr if isinstance(lr, str) else f"{lr:.4g}" + " (auto)" * (config.train.learning_rate == "auto")
    glance = (f"{config.train.num_iterations} iterations at learning rate {rate}{_stopping(training)}: "
              f"cost {costs[0]:.4f} to {costs[-1]:.4f}. Train accuracy {metrics['train']['accuracy']:.1%}, "
              f"test accuracy {metrics['test']['accuracy']:.1%}: {fn} {model.classes[1]} images missed and "
              f"{fp} {model.classes[0]} images taken for {model.classes[1]}, out of {tn + fp + fn + tp}.")
    mistakes, confident = galleries(test_set, P, model, config.evaluate.enlarge)
    return _write(run_dir / "report.html", page.document(
        f"Run {run_dir.name}",
        page.section("overview", "Overview", page.paragraph(glance, "glance"), _metrics_table(metrics, auc_row)),
        page.section("cost", "How training went: the cost curve", page.svg_img(svg(cost), "cost by iteration")),
        mistakes,
        page.section("weights", "What the neuron learned: the weights w as an image",
                     page.img(weights, "image/png", "weights as an image", css_class="pixels"),
                     "<p>negative <span class=scale></span> positive</p>",
                     page.paragraph(READ_WEIGHTS.format(*model.classes))),
        page.section("confusion", "Confusion matrices", page.img(confusion, "image/png", "confusion matrices")),
        page.section("curves", "ROC and precision-recall curves (test set)", *curves),
        confident,
        page.section("settings", "Data and settings", _settings(config, splits, model))))


def _write(path, text):
    write_text(path, text)
    return path


def _settings(config, splits, model):
    train_set, test_set = splits
    rows = [("data", f"{train_set.path} ({train_set.m} images), {test_set.path} ({test_set.m} images)"),
            ("images", f"{' x '.join(map(str, model.image_shape))}, classes {' / '.join(model.classes)}")]
    rows += list(config.flat().items())
    return page.table(("setting", "value"), rows)


def _stopping(training):
    """The glance line's words on early stopping, from the training record."""
    if training.get("best_iteration") is None or not training.get("early_stopping"):
        return ""
    stop = f"stopped at iteration {training['stopped_at']}, " if training.get("stopped_at") is not None else ""
    return f" ({stop}weights of iteration {training['best_iteration']}, the lowest validation cost)"


def _metrics_table(metrics, auc_row):
    """Each split's metrics; the baselines sit next to accuracy. Runs from before roc_auc was recorded in
    metrics.json show the test ROC AUC of auc_row."""
    splits = [s for s in ("train", "validation", "test") if s in metrics]
    names = ("accuracy", "majority_accuracy", "roc_auc", "average_precision", "precision", "recall", "f1",
             "log_loss", "count")
    fmt = lambda v: "undefined" if v is None else f"{v:.4g}"  # roc_auc of a single-class split
    rows = [(n, *(fmt(metrics[s][n]) for s in splits)) for n in names if all(n in metrics[s] for s in splits)]
    extra = [] if "roc_auc" in metrics["test"] else [auc_row]
    return page.table(("metric", *splits), rows + extra, numeric=range(1, len(splits) + 1))


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
            note], ("ROC AUC", "", f"{area:.4g}")


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
    settings = {run: load_config(run / "config.yaml").flat() for run in runs}
    varying = [k for k in settings[runs[0]] if len({str(s[k]) for s in settings.values()}) > 1]
    cost_scale = cost_scale or load_config(runs[0] / "config.yaml").report.cost_scale
    if cost_scale not in ("linear", "log"):
        raise PipelineError(f"{sweep_dir}: cost_scale must be linear or log, got {cost_scale!r}")
    costs = {run: read_costs(run / "costs.csv", cost_scale == "log") for run in runs}
    label = lambda run: ", ".join(f"{k.split('.')[1]}={settings[run][k]}" for k in varying) or run.name
    chart = line_chart([(label(run), *costs[run]) for run in runs], "Cost by iteration, one line per run",
                       "iteration", "cost", log_y=cost_scale == "log", size=(720, max(420, 110 + 18 * len(runs))))
    summary = sweep_dir / "summary.csv"
    header, rows = _read_table(summary) if summary.is_file() else _sweep_table(runs, settings, varying, costs)
    write_text(sweep_dir / "cost_curves.svg", svg(chart))
    write_png(sweep_dir / "cost_curves.png", png(chart))
    write_text(sweep_dir / "report.html", page.document(
        f"Sweep {sweep_dir.name}",
        page.section("summary", f"Summary ({len(runs)} runs)", page.table(header, rows, numeric=range(1, len(header))),
                     page.paragraph(f"Each run has its own report: <run>/report.html. Settings that differ "
                                    f"between runs: {', '.join(varying) or 'none'}.")),
        page.section("cost", "Cost curves", page.svg_img(svg(chart), "cost curves of every run"))))
    return sweep_dir / "report.html"


def _read_table(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise PipelineError(f"{path}: empty; expected a header row")
    return rows[0], rows[1:]


def _sweep_table(runs, settings, varying, costs):
    header = ["run", *varying, "train accuracy", "test accuracy", "test log_loss", "final cost"]
    rows = []
    for run in runs:
        m = read_metrics(run / "metrics.json")
        rows.append([run.name, *(settings[run][k] for k in varying), f"{m['train']['accuracy']:.4f}",
                     f"{m['test']['accuracy']:.4f}", f"{m['test']['log_loss']:.4f}", f"{costs[run][1][-1]:.6f}"])
    return header, rows


def _saved_splits(config):
    """The (train, test) Datasets of config as they are on disk, the training images left there (lazy)."""
    if config.data.source == "course":
        return data.load_course(Path(config.data.dir), lazy_train=True)
    from pipeline.prepare import dataset_dir

    folder = dataset_dir(config.data)
    return data.load_split(folder / "train.h5", "train", lazy=True), data.load_split(folder / "test.h5", "test")

