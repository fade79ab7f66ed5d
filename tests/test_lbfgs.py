"""train.solver lbfgs reaches scikit-learn's optimum of the same cost, in memory and streamed from HDF5; it says
how it ended; train.l2 auto chooses on validation; the folder defaults converge and separate what a converged
pixel logistic regression separates; the refusals' words."""
import csv
import json

import numpy as np
import pytest

from pipeline.config import TrainConfig
from pipeline.features import features, fit_scaler
from pipeline.l2path import GRID
from pipeline.solvers import in_memory_blocks, primal_gradient
from pipeline.streaming import Chunks
from pipeline.train import fit_ended
from tests.conftest import ROOT, run_cli
from tests.imagefolders import make_folder
from tests.test_solvers import images, on_disk


def objective(w, b, X, Y, l2, weights=None):
    """J = mean (weighted) cross-entropy + l2/(2m) ||w||^2 at w (n_x, 1), b, written out here."""
    Z = w.T @ X + b  # (1, m)
    losses = np.logaddexp(0.0, Z) - Y * Z
    s = np.ones_like(Y, dtype=float) if weights is None else weights
    return float(np.mean(s * losses)) + l2 / (2 * X.shape[1]) * float(np.sum(w * w))


def sklearn_optimum(X, Y, l2, weights=None):
    """scikit-learn minimises 0.5 ||w||^2 + C sum_i s_i loss_i = (m / l2) J when C = 1 / l2: the same minimiser.
    Returns its w (n_x, 1) and b."""
    linear_model = pytest.importorskip("sklearn.linear_model")  # the [test] extra installs it
    model = linear_model.LogisticRegression(C=1 / l2, tol=1e-12, max_iter=100_000)
    model.fit(X.T, Y[0], sample_weight=None if weights is None else weights[0])
    return model.coef_.T, float(model.intercept_[0])


@pytest.mark.parametrize("l2, balanced", [(0.5, False), (5.0, True)])
def test_lbfgs_reaches_sklearns_optimum_in_memory_and_streamed(tmp_path, l2, balanced):
    x, y = images(80, 4, seed=7)  # n_x = 48 < m = 80: random labels, not separable
    y[0, :50] = 1  # unbalanced, for the weights to matter
    weights = np.where(y == 1, 80 / (2 * 50), 80 / (2 * 30)) if balanced else None
    scaler = fit_scaler("divide255", None)
    X = features(x, scaler)
    config = TrainConfig(solver="lbfgs", l2=l2, tol=1e-9, num_iterations=2000, print_every=10)
    w_ref, b_ref = sklearn_optimum(X, y, l2, weights)
    J_ref = objective(w_ref, b_ref, X, y, l2, weights)
    for data in (X, Chunks(on_disk(tmp_path, x), scaler, chunk_size=7)):
        fit = fit_ended(data, y, config, weights=weights)
        assert fit.ended["converged"] is True and fit.ended["stop"] == "converged"
        assert fit.ended["grad_norm"] <= 1e-7 and fit.ended["passes"] >= fit.ended["iterations"] > 5
        assert abs(fit.costs[-1] - J_ref) <= 1e-6 * J_ref  # the bar; in fact far closer:
        assert fit.costs[-1] == pytest.approx(objective(fit.w, fit.b, X, y, l2, weights), rel=1e-12)
        assert fit.costs[-1] <= J_ref + 1e-12
        np.testing.assert_allclose(fit.w, w_ref, atol=1e-5)
        assert fit.b == pytest.approx(b_ref, abs=1e-5)
        assert fit.iterations[0] == 0 and fit.iterations[-1] == fit.ended["iterations"]
        assert all(i % 10 == 0 for i in fit.iterations[:-1])


def test_the_gradient_is_the_cost_s_finite_differences():
    x, y = images(30, 2, seed=3)
    X = features(x, fit_scaler("divide255", None))
    weights = np.where(y == 1, 0.7, 1.4)
    gradient = primal_gradient(in_memory_blocks(X, "float64"), y, "float64", l2=2.0, weights=weights)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((X.shape[0], 1)), 0.3
    cost, dw, db = gradient(w, b)
    assert cost == pytest.approx(objective(w, b, X, y, 2.0, weights), rel=1e-12)
    h = 1e-6
    for j in range(X.shape[0]):
        e = np.zeros_like(w)
        e[j] = h
        numeric = (objective(w + e, b, X, y, 2.0, weights) - objective(w - e, b, X, y, 2.0, weights)) / (2 * h)
        assert dw[j, 0] == pytest.approx(numeric, abs=1e-8)
    numeric = (objective(w, b + h, X, y, 2.0, weights) - objective(w, b - h, X, y, 2.0, weights)) / (2 * h)
    assert db == pytest.approx(numeric, abs=1e-8)


def test_lbfgs_stopped_by_the_iteration_limit_says_so():
    x, y = images(60, 4, seed=1)
    X = features(x, fit_scaler("divide255", None))
    fit = fit_ended(X, y, TrainConfig(solver="lbfgs", l2=0.01, num_iterations=7, print_every=3))
    assert fit.ended["converged"] is False and fit.ended["stop"] == "iteration limit"
    assert fit.ended["iterations"] == 7 and fit.iterations == [0, 3, 6, 7] and len(fit.costs) == 4
    assert fit.ended["grad_norm"] > 1e-5


def test_gradient_descent_reports_how_it_ended_too():
    x, y = images(60, 4, seed=1)
    X = features(x, fit_scaler("divide255", None))
    fit = fit_ended(X, y, TrainConfig(solver="primal", num_iterations=50))
    assert fit.ended == {"converged": False, "iterations": 50, "grad_norm": pytest.approx(fit.ended["grad_norm"]),
                         "passes": 51, "stop": "iteration limit"}
    _, dw, db = primal_gradient(in_memory_blocks(X, "float64"), y, "float64")(fit.w, fit.b)
    assert fit.ended["grad_norm"] == pytest.approx(max(np.abs(dw).max(), abs(db)), rel=1e-12)


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    """A folder of 8 x 8 images (cats redder: separable by a pixel LR), and a separate test folder."""
    work = tmp_path_factory.mktemp("lbfgs")
    make_folder(work / "photos", counts=(("cat", 50), ("non-cat", 40)), size=8, seed=0)
    make_folder(work / "test", counts=(("cat", 30), ("non-cat", 30)), size=8, seed=1)
    return work


def train_defaults(work, run, *sets):
    """`train --config folder_example` with the folders set (and sets), in work."""
    args = ["train", "--config", "folder_example", "--set", "data.root=photos", "--set", "data.test_root=test",
            "--set", "data.image_size=8", "--run-dir", run]
    for s in sets:
        args += ["--set", s]
    return run_cli(*args, cwd=work)


@pytest.fixture(scope="module")
def default_run(separable):
    result = train_defaults(separable, separable / "run")
    assert result.returncode == 0, result.stderr
    return separable / "run", result


def test_the_folder_defaults_converge_and_score_on_the_test_folder(default_run):
    run, result = default_run
    metrics = json.loads((run / "metrics.json").read_text())
    training = json.loads((run / "run.json").read_text())["training"]
    assert metrics["test"]["count"] == 60 and metrics["test"]["accuracy"] >= 0.99
    assert training["converged"] is True and training["solver"] == "lbfgs" and training["l2_auto"] is True
    assert {"iterations", "grad_norm", "passes"} <= set(training) and training["grad_norm"] <= 1e-5
    assert f"l2: auto = {training['l2']:.4g}, the lowest validation cost of {len(training['l2_path'])} fits; " \
        "from there, L-BFGS converged after " in result.stderr
    assert result.stderr.count("converged after ") == len(training["l2_path"]) + 2  # each fit, the last, the summary
    assert "L-BFGS at l2 = " in (run / "report.html").read_text()


def test_l2_auto_keeps_the_lowest_validation_cost_of_a_path_from_strong_to_weak(default_run):
    run, _ = default_run
    training = json.loads((run / "run.json").read_text())["training"]
    metrics = json.loads((run / "metrics.json").read_text())
    path = training["l2_path"]
    assert metrics["l2_path"] == path and 3 <= len(path) <= len(GRID)
    m = metrics["train"]["count"]
    assert [p["l2"] for p in path] == pytest.approx([a * m for a in GRID[:len(path)]])
    costs = [p["validation_cost"] for p in path]
    chosen = [p for p in path if p["chosen"]]
    assert len(chosen) == 1 and chosen[0]["validation_cost"] == min(costs) and chosen[0]["l2"] == training["l2"]
    # the model is the chosen fit, finished from train.tol's 1e-4 of the path to 1e-6
    assert metrics["validation"]["log_loss"] == pytest.approx(min(costs), abs=1e-3)
    if len(path) < len(GRID):  # stopped early: worse twice in a row
        assert costs[-3] < costs[-2] < costs[-1]
    assert training["passes"] > sum(p["passes"] for p in path)  # the path's, and the chosen fit finished
    assert all(p["converged"] and 0 <= p["validation_accuracy"] <= 1 for p in path)
    assert path[-1]["iterations"] < path[0]["iterations"] + 50  # warm started: no fit starts over
    report = (run / "report.html").read_text()
    assert 'id="l2"' in report and "The regularisation chosen on validation" in report
    assert "This curve is the last fit alone: it starts from the weights the l2 path reached" in report
    assert "the chosen l2" in (run / "l2_path.svg").read_text()


def test_costs_csv_holds_the_chosen_fit_finished_from_where_the_path_stopped(default_run):
    run, _ = default_run
    with open(run / "costs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    training = json.loads((run / "run.json").read_text())["training"]
    chosen = next(p for p in training["l2_path"] if p["chosen"])
    assert float(rows[0]["cost"]) == pytest.approx(chosen["train_cost"], rel=1e-12)  # from where the path stopped
    assert int(rows[-1]["iteration"]) == training["iterations"] and float(rows[-1]["cost"]) <= chosen["train_cost"]
    assert all(int(r["iteration"]) % 100 == 0 for r in rows[:-1]) and "validation_cost" in rows[0]


def test_lbfgs_at_a_fixed_l2_prints_its_costs_and_how_it_ended(separable, tmp_path):
    result = train_defaults(separable, tmp_path / "fixed", "train.l2=0.5", "train.print_every=2",
                            "train.num_iterations=5")
    assert result.returncode == 0, result.stderr
    printed = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("Cost")]
    assert printed == [f"Cost after iteration {i}" for i in (0, 2, 4, 5)]  # every print_every, and the last
    assert "L-BFGS stopped at the iteration limit before converging (5 iterations)" in result.stderr
    training = json.loads((tmp_path / "fixed" / "run.json").read_text())["training"]
    assert training["converged"] is False and training["iterations"] == 5 and training["l2"] == 0.5
    assert "stopped at the iteration limit before converging" in (tmp_path / "fixed" / "report.html").read_text()


@pytest.mark.parametrize("sets, message", [
    (["train.solver=primal"], "train.l2 auto needs train.solver lbfgs (each l2 of the path is fitted to convergence; "
                              "gradient descent would stop short), got train.solver primal"),
    (["data.val_fraction=0"], "train.l2 auto needs a validation split: set data.val_fraction above 0 (the test split "
                              "is never used to choose anything)"),
    (["train.early_stopping=true"], "train.early_stopping is for gradient descent: train.solver lbfgs fits to "
                                    "convergence; set train.early_stopping: false and regularise with train.l2 "
                                    "(auto: chosen on validation)"),
])
def test_what_lbfgs_and_l2_auto_cannot_do_is_refused_in_one_line(separable, tmp_path, sets, message):
    result = train_defaults(separable, tmp_path / "run", "evaluate.threshold=0.5", *sets)
    assert result.returncode == 1 and result.stderr == f"error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_the_lessons_config_is_still_gradient_descent():
    from pipeline.config import load_config

    train = load_config(ROOT / "configs" / "default.yaml").train
    assert (train.solver, train.learning_rate, train.l2) == ("auto", 0.005, 0.0)


def test_lbfgs_started_at_its_optimum_stays_there():
    """start: where the l2 path's warm starts begin. At the optimum the first gradient already meets train.tol."""
    x, y = images(60, 4, seed=2)
    X = features(x, fit_scaler("divide255", None))
    config = TrainConfig(solver="lbfgs", l2=1.0, num_iterations=500)
    first = fit_ended(X, y, config)
    again = fit_ended(X, y, config, start=(first.w, first.b))
    assert first.ended["iterations"] > 10 and again.ended == {**again.ended, "iterations": 0, "passes": 1,
                                                              "converged": True}
    assert again.costs == [first.costs[-1]] and again.iterations == [0]


def test_load_run_says_how_the_fit_ended_as_run_json_does(default_run):
    from pipeline import load_run

    run, _ = default_run
    training = json.loads((run / "run.json").read_text())["training"]
    neuron = load_run(run)
    assert neuron.get_params()["l2"] == "auto" and neuron.l2_ == training["l2"] > 0
    assert neuron.converged_ is True and neuron.n_iter_ == training["iterations"] < neuron.num_iterations
