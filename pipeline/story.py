"""What a run came to, in words: the closing summary train prints on stderr, and the phrases the report shares.

Everything here reads metrics.json's dict and run.json's record (its `training` section), so a key that a
newer trainer adds (`converged`, `iterations`, an `l2` chosen on a path) shows up once it is recorded, and an
older run without it still reads right.
"""

SPLITS = (("train", "train"), ("validation", "validation"), ("test", "test"))


def percent(fraction):
    """0.6121883 -> '61.2 %': the terminal's one decimal (the report keeps two)."""
    return f"{100 * fraction:.1f} %"


def threshold_words(training, metric="accuracy"):
    """'0.505, chosen on the validation split for the best accuracy', or '0.5, as set in the config'."""
    t = training.get("threshold")
    if t is None:
        return None
    how = (f"chosen on the validation split for the best {metric.replace('_', ' ')}"
           if training.get("threshold_auto") else "as set in the config (evaluate.threshold)")
    return f"{t:.4g}, {how}"


def kept_words(training, num_iterations=None):
    """Which weights were kept and why: early stopping's iteration, or the last one and whether it converged."""
    if training.get("early_stopping") and training.get("best_iteration") is not None:
        best, stopped = training["best_iteration"], training.get("stopped_at")
        end = (f"stopped at iteration {stopped}, {_count(best, stopped)} later without a lower one"
               if stopped is not None else f"ran all {num_iterations} iterations" if num_iterations else "")
        return f"iteration {best}: the lowest validation cost (early stopping{'; ' + end if end else ''})"
    if "converged" in training:
        n = training.get("iterations", num_iterations)
        return (f"the last iteration: converged after {n} iterations" if training["converged"] else
                f"the last iteration: stopped at the iteration limit ({n}) before converging")
    return f"the weights after all {num_iterations} iterations" if num_iterations else "the last iteration"


def l2_words(training):
    """The l2 used, named when it was chosen (train.l2: auto records it with its path), else None."""
    if training.get("l2") is None or not (training.get("l2_auto") or training.get("l2_path")):
        return None
    return f"{training['l2']:.4g}, chosen on the validation split"


def _count(best, stopped):
    n = (stopped - best) if isinstance(stopped, int) and isinstance(best, int) else None
    return "iterations" if n is None else f"{n} iterations"


def verdict(metrics, classes=None):
    """One sentence: the test accuracy against the majority baseline (and validation's, when there is one)."""
    test = metrics["test"]
    acc, base = test["accuracy"], test.get("majority_accuracy")
    if base is None:
        return f"Test accuracy {percent(acc)}."
    gap = float(percent(acc)[:-2]) - float(percent(base)[:-2])  # the points between the two numbers shown
    always = f" (always answering {classes[_majority_class(metrics)]})" if classes else ""
    if abs(gap) < 0.05:
        return f"Test accuracy {percent(acc)}: no better than the majority baseline of {percent(base)}{always}."
    how = "above" if gap > 0 else "below"
    return (f"Test accuracy {percent(acc)}, {abs(gap):.1f} points {how} the majority baseline of {percent(base)}"
            f"{always}.")


def _majority_class(metrics):
    """The class the baseline always answers: the training set's majority (0 on a tie), as evaluate takes it."""
    (tn, fp), (fn, tp) = metrics["train"]["confusion"]  # rows: the true label
    return int(2 * (fn + tp) > tn + fp + fn + tp)


def summary(metrics, record, run_dir, num_iterations=None, threshold_metric="accuracy"):
    """The closing lines of a train run: accuracies beside the majority baseline, the threshold, the weights
    kept (and l2 chosen), the run folder; labels aligned."""
    training = (record or {}).get("training") or {}
    splits = [(name, title) for name, title in SPLITS if name in metrics]
    cells = [["", *(title for _, title in splits)],
             ["accuracy:", *(percent(metrics[n]["accuracy"]) for n, _ in splits)]]
    if all("majority_accuracy" in metrics[n] for n, _ in splits):
        cells.append(["majority baseline:", *(percent(metrics[n]["majority_accuracy"]) for n, _ in splits)])
    widths = [max(len(row[k]) for row in cells) for k in range(len(cells[0]))]
    lines = ["  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    rows = [("threshold:", threshold_words(training, threshold_metric)),
            ("kept:", kept_words(training, num_iterations)), ("l2:", l2_words(training)),
            ("run folder:", str(run_dir))]
    return lines + [f"{name.ljust(widths[0])}  {text}" for name, text in rows if text]
