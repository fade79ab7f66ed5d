"""train.l2 auto: the regularisation chosen on the validation split, never on test.

A path of L-BFGS fits from strong to weak L2, each started from the previous one's weights (warm start: the
optimum moves little from one l2 to the next, so each fit takes few iterations). Each fit is scored by its
validation log loss; the lowest wins and is finished to train.tol. The path stops early once the validation
cost has risen twice in a row: past the best, weaker regularisation only fits the training images more closely
(docs/training.md).
"""
import math

# l2 / m, from strong to weak: J = mean loss + (l2/m)/2 ||w||^2, so l2/m is the regularisation per example
# and the same grid suits any m. 10 shrinks w to almost nothing on pixels in [0, 1]; 1e-6 is almost none.
GRID = tuple(10.0 ** (k / 2) for k in range(2, -13, -1))  # 15 values, half a decade apart: 10, 3.16, 1, ..., 1e-6
# the path's fits stop at this gradient tolerance (scikit-learn's default tol): enough to rank them; the chosen
# one is then finished to train.tol from where it stopped (pipeline/train.py _l2_auto)
PATH_TOL = 1e-4


def grid(m):
    """The l2 values of the path for m training examples, strongest first."""
    return [alpha * m for alpha in GRID]


def choose(fit_at, score, m, log=None):
    """The path: fit_at(l2, start) -> pipeline.train.Fit fits from start (None: zeros; else the previous fit's
    (w, b)), score(w, b) -> (validation cost, validation accuracy). Returns (index of the chosen point, the
    path as dicts, the chosen Fit).
    """
    path, fits, start = [], [], None
    for l2 in grid(m):
        result = fit_at(l2, start)
        cost, accuracy = score(result.w, result.b)
        path.append({"l2": l2, "iterations": result.ended["iterations"], "converged": result.ended["converged"],
                     "passes": result.ended["passes"], "train_cost": result.costs[-1], "validation_cost": cost,
                     "validation_accuracy": accuracy})
        fits.append(result)
        log and log(f"l2 {l2:.4g}: {sentence(result.ended)}, validation cost {cost:.6f}")
        start = (result.w, result.b)
        if len(path) >= 3 and path[-1]["validation_cost"] > path[-2]["validation_cost"] > path[-3]["validation_cost"]:
            break  # worse twice in a row: the best is behind
    best = min(range(len(path)), key=lambda k: (path[k]["validation_cost"], k))
    assert math.isfinite(path[best]["validation_cost"])
    return best, path, fits[best]


def sentence(ended):
    """How a fit ended, in the words the terminal and the report use."""
    n = ended["iterations"]
    if ended["converged"]:
        return f"converged after {n} iteration{'s' * (n != 1)}"
    if ended["stop"] == "iteration limit":
        return f"stopped at the iteration limit before converging ({n} iterations)"
    if ended["stop"] == "early stopping":
        return f"stopped early at iteration {n} before converging"
    return f"stopped after {n} iterations before converging: the {ended['stop']}"
