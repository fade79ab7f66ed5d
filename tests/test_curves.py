"""ROC and precision-recall against direct computations on the same scores, ties included."""
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.curves import auc, average_precision, pr_curve, roc_curve


def rank_auc(y, p):
    """The Mann-Whitney statistic: P(score of a positive > score of a negative), a tie counting one half."""
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]  # (n_pos, n_neg)
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_the_rank_statistic_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(200) < 0.4).astype(np.int64)
    p = np.round(np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1), 1)  # rounding: many tied scores
    assert len(np.unique(p)) < 12
    fpr, tpr = roc_curve(y.reshape(1, -1), p.reshape(1, -1))
    assert auc(fpr, tpr) == pytest.approx(rank_auc(y, p), abs=1e-12)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and len(fpr) == len(np.unique(p)) + 1


@pytest.mark.parametrize("p, expected", [([0.9, 0.8, 0.2, 0.1], 1.0), ([0.1, 0.2, 0.8, 0.9], 0.0),
                                         ([0.5, 0.5, 0.5, 0.5], 0.5)])
def test_roc_auc_extremes(p, expected):
    Y = np.array([[1, 1, 0, 0]])
    assert auc(*roc_curve(Y, np.array([p]))) == expected


def test_average_precision_is_the_mean_precision_at_each_positive_without_ties():
    rng = np.random.default_rng(1)
    y = (rng.random(50) < 0.5).astype(np.int64)
    p = rng.random(50)
    order = np.argsort(-p)
    hits = np.cumsum(y[order])
    direct = np.mean([hits[k] / (k + 1) for k in range(50) if y[order][k] == 1])
    recall, precision = pr_curve(y.reshape(1, -1), p.reshape(1, -1))
    assert average_precision(recall, precision) == pytest.approx(direct)
    assert recall[-1] == 1 and precision[-1] == pytest.approx(np.mean(y))


def test_curves_refuse_a_single_class():
    with pytest.raises(PipelineError, match="ROC curve: the labels hold a single class"):
        roc_curve(np.array([[1, 1]]), np.array([[0.2, 0.7]]))
    with pytest.raises(PipelineError, match="precision-recall curve: the labels hold no positive example"):
        pr_curve(np.array([[0, 0]]), np.array([[0.2, 0.7]]))
