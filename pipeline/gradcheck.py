"""Gradient checking: the analytic gradients of `propagate` against centred finite differences of its cost.

The cost J(w, b) is a plain number, so each partial derivative can be estimated without any calculus:
dJ/dθ ≈ (J(θ + ε) - J(θ - ε)) / 2ε. If the backward pass is right, the two agree to about ε².
"""
import numpy as np

from pipeline.model import propagate

# below this relative difference the analytic gradients are taken as right (the course's rule of thumb)
TOLERANCE = 1e-7


def numerical_gradients(w, b, X, Y, epsilon=1e-7, cost=None):
    """Centred differences of the cost for each entry of w (n_x, 1) and for b, on X (n_x, m), Y (1, m).

    cost(w, b, X, Y) -> float defaults to propagate's cost. Returns (dw of shape (n_x, 1), db float).
    """
    cost = cost or (lambda *args: propagate(*args)[1])
    dw = np.zeros_like(w)  # (n_x, 1)
    for j in range(w.shape[0]):
        step = np.zeros_like(w)
        step[j, 0] = epsilon
        dw[j, 0] = (cost(w + step, b, X, Y) - cost(w - step, b, X, Y)) / (2 * epsilon)
    db = (cost(w, b + epsilon, X, Y) - cost(w, b - epsilon, X, Y)) / (2 * epsilon)
    return dw, float(db)


def relative_difference(a, b):
    """||a - b|| / (||a|| + ||b||): 0 when equal, about 1 when unrelated; 0.0 when both are zero."""
    a, b = np.ravel(a), np.ravel(b)
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0


def gradient_check(w, b, X, Y, epsilon=1e-7, backward=propagate):
    """Compare backward(w, b, X, Y) -> ({"dw", "db"}, cost) with finite differences of its own cost.

    Returns the relative differences {"dw": ..., "db": ..., "all": ...}, "all" over [dw; db] together.
    """
    grads, _ = backward(w, b, X, Y)
    dw, db = numerical_gradients(w, b, X, Y, epsilon, cost=lambda *args: backward(*args)[1])
    analytic = np.append(grads["dw"].ravel(), grads["db"])  # (n_x + 1,)
    numeric = np.append(dw.ravel(), db)
    return {"dw": relative_difference(grads["dw"], dw), "db": relative_difference(grads["db"], db),
            "all": relative_difference(analytic, numeric)}
