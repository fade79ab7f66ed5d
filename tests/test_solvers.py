"""primal, gram and streaming from HDF5 are the same gradient descent: they agree with each other and with the
lesson's optimize, with and without L2, on small generated data of several shapes."""
import h5py
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.config import TrainConfig
from pipeline.features import features, fit_scaler, flatten
from pipeline.model import cross_entropy, initialize_with_zeros, optimize, predict, propagate
from pipeline.solvers import choose_solver
from pipeline.streaming import Chunks, streams
from pipeline.streaming import fit_scaler as fit_scaler_chunked
from pipeline.train import fit, solver_for

GIB = 2**30


def images(m, size, seed=0):
    """Random (m, size, size, 3) uint8 images and random (1, m) labels of both classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(1, m))
    y[0, :2] = (0, 1)
    return rng.integers(0, 256, size=(m, size, size, 3), dtype=np.uint8), y


def on_disk(tmp_path, x):
    """x written to a real HDF5 file and opened again: the h5py Dataset that streaming reads."""
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("train_set_x", data=x)
    return h5py.File(tmp_path / "x.h5", "r")["train_set_x"]


def config(**keys):
    return TrainConfig(**{"learning_rate": 0.05, "num_iterations": 120, "print_every": 10, **keys})


# (image size, m): n_x = 3 * size**2 is 48 > m, 27 == m, and 12 < m
SHAPES = [(4, 15), (3, 27), (2, 40)]


@pytest.mark.parametrize("size, m", SHAPES)
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_gram_primal_and_streaming_agree(tmp_path, size, m, l2):
    x, y = images(m, size, seed=size)
    scaler = fit_scaler("divide255", None)
    X = features(x, scaler)  # (n_x, m)
    runs = {solver: fit(X, y, config(solver=solver, l2=l2)) for solver in ("primal", "gram")}
    runs["streaming"] = fit(Chunks(on_disk(tmp_path, x), scaler, chunk_size=7), y, config(l2=l2))
    w0, b0, costs0 = runs["primal"]
    assert len(costs0) == 12 and costs0[-1] < costs0[0]
    for w, b, costs in runs.values():
        assert w.shape == (3 * size**2, 1) and w.dtype == np.float64
        np.testing.assert_allclose(w, w0, rtol=0, atol=1e-9)
        assert b == pytest.approx(b0, abs=1e-9)
        np.testing.assert_allclose(costs, costs0, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(predict(w, b, X), predict(w0, b0, X))


def test_primal_is_the_lessons_optimize():
    x, y = images(30, 3)
    X = features(x, fit_scaler("divide255", None))
    params, _, lesson_costs = optimize(*initialize_with_zeros(X.shape[0]), X, y, 120, 0.05, 10)
    for solver in ("primal", "gram"):
        w, b, costs = fit(X, y, config(solver=solver))
        np.testing.assert_allclose(w, params["w"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(costs, lesson_costs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("solver", ["primal", "gram"])
def test_l2_adds_its_term_to_the_cost_and_the_gradient(solver):
    """Two steps by hand from the lesson's propagate: J = cost + l2/(2m)||w||^2, dw = dw + (l2/m) w."""
    x, y = images(20, 3, seed=5)
    X, m, lr, l2 = features(x, fit_scaler("divide255", None)), 20, 0.05, 3.0
    w, b = initialize_with_zeros(X.shape[0])
    expected_costs = []
    for _ in range(3):
        grads, cost = propagate(w, b, X, y)
        expected_costs.append(cost + l2 / (2 * m) * float(np.sum(w * w)))
        w, b = w - lr * (grads["dw"] + l2 / m * w), b - lr * grads["db"]
    w_fit, b_fit, costs = fit(X, y, config(solver=solver, l2=l2, num_iterations=3, print_every=1))
    np.testing.assert_allclose(costs, expected_costs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(w_fit, w, rtol=0, atol=1e-12)
    assert b_fit == pytest.approx(b, abs=1e-12)
    assert expected_costs[2] > cross_entropy(w_fit.T @ X + b_fit, y)  # the L2 term is really there


def test_l2_shrinks_the_weights():
    x, y = images(15, 4)
    X = features(x, fit_scaler("divide255", None))
    norms = [np.linalg.norm(fit(X, y, config(l2=l2))[0]) for l2 in (0.0, 1.0, 10.0)]
    assert norms[0] > norms[1] > norms[2] > 0


@pytest.mark.parametrize("solver", ["primal", "gram"])
def test_float32_is_close_to_float64_but_computed_in_float32(solver):
    x, y = images(30, 4)
    X = features(x, fit_scaler("divide255", None))
    w64, _, costs64 = fit(X, y, config(solver=solver))
    w32, _, costs32 = fit(X, y, config(solver=solver, dtype="float32"))
    assert w32.dtype == np.float64  # the model file always holds float64
    np.testing.assert_allclose(costs32, costs64, rtol=1e-4)
    np.testing.assert_allclose(w32, w64, atol=1e-4)
    assert not np.array_equal(w32, w64)  # rounded in float32 along the way


def test_standardize_fitted_in_chunks_is_the_in_memory_fit(tmp_path):
    x, _ = images(23, 3)
    x[:, 0, 0, 0] = 9  # a constant pixel keeps std 1
    whole = fit_scaler("standardize", flatten(x))
    chunked = fit_scaler_chunked("standardize", on_disk(tmp_path, x), chunk_size=5)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=1e-12)
    assert chunked.std[0, 0] == 1.0


@pytest.mark.parametrize("m, n_x, iterations, available, expected", [
    (209, 12288, 2000, 8 * GIB, "gram"),  # the course: K is 209 x 209
    (3000, 12288, 2000, 8 * GIB, "gram"),
    (5000, 12288, 2000, 8 * GIB, "primal"),  # K costs more than the iterations it saves
    (209, 12288, 1, 8 * GIB, "primal"),  # one iteration: computing K is the expensive part
    (40, 12, 2000, 8 * GIB, "primal"),  # m > n_x
    (3000, 12288, 2000, 100 * 2**20, "primal"),  # K (72 MB) takes more than a quarter of 100 MB
])
def test_auto_chooses_by_the_cost_model(m, n_x, iterations, available, expected):
    assert choose_solver(m, n_x, iterations, 8, available) == expected


def test_fit_runs_what_the_config_or_auto_says(tmp_path):
    x, _ = images(10, 8)  # n_x = 192 > m = 10
    X = features(x, fit_scaler("divide255", None))
    assert solver_for(X, config()) == "gram"
    assert solver_for(np.zeros((12, 40)), config()) == "primal"
    assert solver_for(X, config(solver="primal")) == "primal"
    assert solver_for(Chunks(on_disk(tmp_path, x), fit_scaler("divide255", None), 4), config()) == "streaming"


@pytest.mark.parametrize("setting, m, expected", [
    ("auto", 1000, False), ("auto", 10**6, True), (True, 10, True), (False, 10**6, False)])
def test_streaming_when_asked_or_when_x_would_not_fit(setting, m, expected):
    # 10**6 images of 64 x 64 x 3 need 209 GB in memory; 1000 need 209 MB, under half of 8 GiB
    assert streams(config(streaming=setting), m, 12288, available=8 * GIB) is expected


def test_gram_refuses_to_stream():
    with pytest.raises(PipelineError, match=r"train.solver gram needs the training set in memory, but it is "
                                            r"streamed \(train.streaming is true\); use train.solver primal or auto"):
        streams(config(solver="gram", streaming=True), 10, 12)
    with pytest.raises(PipelineError, match=r"streamed \(the training set needs 103.0 GiB in memory, 8.0 GiB are"):
        streams(config(solver="gram"), 10**6, 12288, available=8 * GIB)


def test_chunks_are_the_scaled_features_in_order(tmp_path):
    x, _ = images(11, 2)
    scaler = fit_scaler("divide255", None)
    pieces = list(Chunks(on_disk(tmp_path, x), scaler, 4, "float32"))
    assert [cols for cols, _ in pieces] == [slice(0, 4), slice(4, 8), slice(8, 11)]
    assert all(X.dtype == np.float32 for _, X in pieces)
    np.testing.assert_allclose(np.concatenate([X for _, X in pieces], axis=1), features(x, scaler), rtol=1e-7)


def test_config_defaults_are_the_lessons_training():
    c = TrainConfig()
    assert (c.solver, c.dtype, c.l2, c.streaming) == ("auto", "float64", 0.0, "auto")
