"""ROC and precision-recall curves of probabilities P against labels Y, both of shape (1, m); cat (1) is positive.

Each curve has one point per distinct score (tied scores move together), from the highest threshold down.
"""
import numpy as np

from pipeline import PipelineError


def _counts(Y, P):
    """Cumulative true and false positives when predicting 1 for every score >= each distinct score."""
    y, p = Y.ravel(), P.ravel()  # (1, m) -> (m,)
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p)), p.size - 1]  # index of the last example of each distinct score
    tp = np.cumsum(y == 1)[last_of_tie]
    fp = np.cumsum(y != 1)[last_of_tie]
    return tp, fp


def both_classes(Y):
    return bool(np.any(Y == 1) and np.any(Y != 1))


def roc_curve(Y, P):
    """False and true positive rates, each of shape (k + 1,) for k distinct scores, starting at (0, 0)."""
    if not both_classes(Y):
        raise PipelineError("ROC curve: the labels hold a single class, so a rate is undefined")
    tp, fp = _counts(Y, P)
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def auc(x, y):
    """Area under the piecewise-linear curve through the points (x, y), by the trapezoidal rule."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def pr_curve(Y, P):
    """Recall and precision, each of shape (k,) for k distinct scores, from the highest threshold down."""
    if not np.any(Y == 1):
        raise PipelineError("precision-recall curve: the labels hold no positive example")
    tp, fp = _counts(Y, P)
    return tp / tp[-1], tp / (tp + fp)


def average_precision(recall, precision):
    """Sum over thresholds of (recall gained) x (precision there): the step-wise area under the PR curve."""
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
