"""The neuron's maths: the lesson's golden values, a finite-difference gradient check, stability."""
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.model import (DIVERGENCE_FACTOR, cross_entropy, initialize_with_zeros, optimize, predict,
                            predict_proba, propagate, sigmoid)

W = np.array([[1.0], [2.0]])
B = 1.5
X = np.array([[1.0, -2.0, -1.0], [3.0, 0.5, -3.2]])
Y = np.array([[1, 1, 0]])


def test_sigmoid_golden():
    np.testing.assert_allclose(sigmoid(np.array([0, 2])), [0.5, 0.88079708], atol=1e-8)


def test_initialize_with_zeros_shapes():
    w, b = initialize_with_zeros(3)
    assert w.shape == (3, 1) and not w.any() and b == 0.0


def test_propagate_golden():
    grads, cost = propagate(W, B, X, Y)
    np.testing.assert_allclose(grads["dw"], [[0.25071532], [-0.06604096]], atol=1e-8)
    assert grads["db"] == pytest.approx(-0.1250040450043965, abs=1e-12)
    assert cost == pytest.approx(0.15900537707692405, abs=1e-12)


def test_optimize_golden():
    params, grads, costs = optimize(W, B, X, Y, num_iterations=100, learning_rate=0.009)
    np.testing.assert_allclose(params["w"], [[0.80956046], [2.0508202]], atol=1e-8)
    assert params["b"] == pytest.approx(1.5948713189708588, abs=1e-12)
    assert len(costs) == 1 and costs[0] == pytest.approx(0.15900537707692405)


def test_predict_golden_and_threshold_invariant():
    w, b = np.array([[0.1124579], [0.23106775]]), -0.3
    Xp = np.array([[1.0, -1.1, -3.2], [1.2, 2.0, 0.1]])
    np.testing.assert_array_equal(predict(w, b, Xp), [[1, 1, 0]])
    for t in (0.2, 0.5, 0.6):
        np.testing.assert_array_equal(predict(w, b, Xp, t), predict_proba(w, b, Xp) > t)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    n_x, m = 7, 11
    Xr, Yr = rng.normal(size=(n_x, m)), rng.integers(0, 2, size=(1, m))
    w, b = rng.normal(size=(n_x, 1)), 0.3
    grads, _ = propagate(w, b, Xr, Yr)
    eps = 1e-6
    for j in range(n_x):
        e = np.zeros_like(w)
        e[j] = eps
        numeric = (propagate(w + e, b, Xr, Yr)[1] - propagate(w - e, b, Xr, Yr)[1]) / (2 * eps)
        assert numeric == pytest.approx(grads["dw"][j, 0], rel=1e-6, abs=1e-9)
    numeric_b = (propagate(w, b + eps, Xr, Yr)[1] - propagate(w, b - eps, Xr, Yr)[1]) / (2 * eps)
    assert numeric_b == pytest.approx(grads["db"], rel=1e-6, abs=1e-9)


def test_saturated_neuron_gives_finite_cost_without_warnings():
    # pytest turns warnings into errors (pyproject), so an overflow or log(0) would fail here
    Z = np.array([[-800.0, 800.0, 40.0, -40.0]])
    assert np.array_equal(sigmoid(Z), [[0.0, 1.0, 1.0, sigmoid(-40.0)]])
    cost = cross_entropy(Z, np.array([[1, 0, 1, 0]]))
    assert cost == pytest.approx((800 + 800 + 2 * np.log1p(np.exp(-40.0))) / 4)


def test_cost_matches_the_lessons_formula_where_that_is_finite():
    rng = np.random.default_rng(1)
    Z, Yr = rng.normal(scale=3, size=(1, 50)), rng.integers(0, 2, size=(1, 50))
    A = 1 / (1 + np.exp(-Z))
    lesson = -np.mean(Yr * np.log(A) + (1 - Yr) * np.log(1 - A))
    assert cross_entropy(Z, Yr) == pytest.approx(lesson, rel=1e-12)


def test_no_rank_1_arrays():
    grads, _ = propagate(W, B, X, Y)
    assert grads["dw"].shape == (2, 1)
    assert predict_proba(W, B, X).shape == (1, 3)


def test_divergence_is_reported_with_a_smaller_learning_rate_hint():
    # random labels on more examples than features: not separable, so a huge step oscillates for ever
    rng = np.random.default_rng(2)
    Xr, Yr = rng.normal(size=(3, 200)), rng.integers(0, 2, size=(1, 200))
    w, b = initialize_with_zeros(3)
    with pytest.raises(PipelineError, match="training diverged: the cost rose from 0.693147 to .* at iteration 1; "
                                           "try a smaller learning_rate than 1000"):
        optimize(w, b, Xr, Yr, num_iterations=50, learning_rate=1000.0)


def test_an_overshoot_below_the_blow_up_factor_is_not_divergence():
    """A step above the stability limit overshoots at first and then converges: not refused."""
    rng = np.random.default_rng(2)
    Xr = rng.normal(size=(3, 200)) + 1.0
    Yr = (Xr[:1] + 0.5 * rng.normal(size=(1, 200)) > 1.6).astype(np.int64)  # learnable, 30% positive
    w, b = initialize_with_zeros(3)
    X1 = np.vstack([Xr, np.ones((1, 200))])  # b's row
    limit = 2 / (np.linalg.eigvalsh(X1 @ X1.T)[-1] / (4 * 200))
    _, _, costs = optimize(w, b, Xr, Yr, num_iterations=300, learning_rate=1.8 * limit, print_every=1)
    assert max(costs) > costs[0] and max(costs) < DIVERGENCE_FACTOR * costs[0] and costs[-1] < costs[0]


def test_non_finite_cost_is_reported():
    w, b = initialize_with_zeros(2)
    # a nan feature (impossible from uint8 images) makes numpy warn; only the refusal matters here
    with np.errstate(invalid="ignore"), pytest.raises(PipelineError, match="the cost is nan at iteration 0"):
        optimize(w, b, np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([[1, 0]]), 5, 0.1)
