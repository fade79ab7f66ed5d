"""The lesson's single neuron: A = sigmoid(w.T X + b), cross-entropy cost, full-batch gradient descent.

Shapes follow the course everywhere: X is (n_x, m), one column per example; Y and A are (1, m);
w is (n_x, 1); b is a float. Names follow the lesson (sigmoid, initialize_with_zeros, propagate,
optimize, predict) so the notes can be read beside this file.
"""
import math

import numpy as np

from pipeline import PipelineError


def sigmoid(z):
    """Return 1 / (1 + exp(-z)) elementwise, for any float z, without overflow warnings."""
    # 1 / (1 + e^-z) = exp(-log(1 + e^-z)); logaddexp never overflows, exp(-big) underflows quietly to 0
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=np.float64)))


def cross_entropy(Z, Y, weights=None):
    """Mean of L(a, y) = -(y log a + (1 - y) log(1 - a)) with a = sigmoid(z), from Z and Y of shape (1, m).

    Written with log(1 + e^z) so that a saturated neuron (a == 0 or 1 in floating point) still gives a
    finite cost instead of log(0). weights (1, m), if given, weigh each example's loss (train.class_weight).
    """
    # -log a = log(1 + e^-z) = log(1 + e^z) - z  and  -log(1 - a) = log(1 + e^z)
    losses = np.logaddexp(0.0, Z) - Y * Z  # (1, m)
    return float(np.mean(losses if weights is None else weights * losses))


def initialize_with_zeros(dim):
    """Return w of shape (dim, 1) and b = 0.0, the lesson's starting point."""
    return np.zeros((dim, 1)), 0.0


def propagate(w, b, X, Y):
    """One forward and backward pass over all m examples.

    w (n_x, 1), b float, X (n_x, m), Y (1, m). Returns ({"dw": (n_x, 1), "db": float}, cost).
    """
    m = X.shape[1]
    Z = w.T @ X + b  # (1, m): b is broadcast to every column
    A = sigmoid(Z)  # (1, m)
    cost = cross_entropy(Z, Y)
    dZ = A - Y  # (1, m): dJ/dz for each example, times m
    dw = X @ dZ.T / m  # (n_x, 1)
    db = float(np.sum(dZ) / m)
    assert dw.shape == w.shape
    return {"dw": dw, "db": db}, cost


def optimize(w, b, X, Y, num_iterations=100, learning_rate=0.009, print_every=100, on_cost=None, on_step=None):
    """Full-batch gradient descent: w -= learning_rate * dw, b -= learning_rate * db, num_iterations times.

    Records the cost every print_every iterations (from iteration 0) and calls on_cost(i, cost) for each
    recorded one; on_step(i) after every iteration (for a progress bar). Returns (params, grads, costs) as
    the lesson does, where costs is the list of recorded costs. Raises PipelineError when DivergenceCheck
    finds the learning rate too large.
    """
    costs = []
    check = DivergenceCheck(learning_rate)
    grads = {"dw": np.zeros_like(w), "db": 0.0}
    for i in range(num_iterations):
        grads, cost = propagate(w, b, X, Y)
        check(i, cost)
        w = w - learning_rate * grads["dw"]
        b = b - learning_rate * grads["db"]
        if i % print_every == 0:
            costs.append(cost)
            if on_cost:
                on_cost(i, cost)
        if on_step:
            on_step(i)
    return {"w": w, "b": b}, grads, costs


# a cost this many times its starting value is a blow-up, not an overshoot: the lesson's own 0.005 climbs from
# 0.693 to 0.897 (1.3 times) in its first steps and then converges (docs/training.md)
DIVERGENCE_FACTOR = 10


class Diverged(PipelineError):
    """Gradient descent blew up: the learning rate is far too large."""


class DivergenceCheck:
    """Called with (i, cost) each iteration; raises Diverged when gradient descent is blowing up.

    That is when the cost stops being finite or exceeds DIVERGENCE_FACTOR times its starting value. A step
    above the stability limit may overshoot for a while on this convex cost and still converge, so a cost
    merely above its start is not refused (a warning before training names the limit, see pipeline/train.py).
    """

    def __init__(self, learning_rate):
        self.learning_rate, self.start = learning_rate, None

    def __call__(self, i, cost):
        if not math.isfinite(cost):
            raise Diverged(f"training diverged: the cost is {cost} at iteration {i}; "
                           f"try a smaller learning_rate than {self.learning_rate}")
        self.start = cost if self.start is None else self.start
        if cost > DIVERGENCE_FACTOR * self.start:
            raise Diverged(f"training diverged: the cost rose from {self.start:.6f} to {cost:.6g} at iteration {i}; "
                           f"try a smaller learning_rate than {self.learning_rate}")


def predict_proba(w, b, X):
    """Return A = sigmoid(w.T X + b) of shape (1, m), the probability of class 1 (cat) for each column of X."""
    return sigmoid(w.T @ X + b)


def predict(w, b, X, threshold=0.5):
    """Return the (1, m) array of 0/1 predictions: 1 where the probability is above threshold."""
    return (predict_proba(w, b, X) > threshold).astype(np.int64)
