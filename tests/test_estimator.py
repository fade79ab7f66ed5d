"""pipeline.Neuron: scikit-learn's own estimator checks, the lesson through the estimator, GridSearchCV, its
parameters checked by the config, and the library staying out of the CLI's way."""
import inspect
import json

import h5py
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline import Neuron
from pipeline.config import ALL_KEYS, Config
from pipeline.estimator import KEYS
from tests.conftest import run_python, train_cli
from tests.test_course import PUBLISHED_COSTS


@parametrize_with_checks([Neuron()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def rows(course_dir, split):
    """The course file's images as rows (m, 12288) uint8 and labels (m,), as the lesson's load_dataset reads them."""
    with h5py.File(course_dir / f"{split}_catvnoncat.h5") as f:
        x, y = f[f"{split}_set_x"][:], f[f"{split}_set_y"][:]
    return x.reshape(len(x), -1), y


@pytest.mark.parametrize("solver", ["gram"])  # primal gives the same numbers (tests/test_solvers.py)
def test_the_lesson_through_the_estimator(course_dir, solver):
    (x, y), (x_test, y_test) = rows(course_dir, "train"), rows(course_dir, "test")
    neuron = Neuron(solver=solver, learning_rate=0.005, num_iterations=2000).fit(x / 255, y)
    assert neuron.score(x / 255, y) * 100 == 99.04306220095694
    assert neuron.score(x_test / 255, y_test) * 100 == 70.0
    np.testing.assert_allclose(neuron.costs_, PUBLISHED_COSTS, atol=1e-6)
    assert neuron.n_iter_ == 2000 and neuron.coef_.shape == (1, 12288) and neuron.intercept_.shape == (1,)
    assert list(neuron.classes_) == [0, 1] and neuron.n_features_in_ == 12288
    # the same neuron scaling raw pixels itself
    inside = Neuron(solver=solver, learning_rate=0.005, scaling="divide255").fit(x, y)
    np.testing.assert_allclose(inside.decision_function(x_test), neuron.decision_function(x_test / 255), atol=1e-9)


def test_the_lesson_printed_as_the_lesson_prints_it(course_dir):
    code = ("import h5py, os; from pipeline import Neuron\n"
            "f = h5py.File(os.path.join(os.environ['CATVNONCAT_DIR'], 'train_catvnoncat.h5'))\n"
            "x, y = f['train_set_x'][:], f['train_set_y'][:]\n"
            "Neuron(solver='gram', learning_rate=0.005, verbose=True).fit(x.reshape(len(x), -1) / 255, y)")
    result = run_python("-c", code, env={"CATVNONCAT_DIR": str(course_dir)}, check=0)
    printed = result.stdout.splitlines()
    assert len(printed) == 20 and printed[0] == "Cost after iteration 0: 0.693147"
    assert printed[-1] == "Cost after iteration 1900: 0.140872"


def test_a_short_repr_of_what_differs_from_the_defaults():
    assert repr(Neuron()) == "Neuron()"
    assert repr(Neuron(solver="gram", l2=10.0)) == "Neuron(l2=10.0, solver='gram')"


def test_any_two_labels_and_the_second_is_positive():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    neuron = Neuron(num_iterations=300).fit(X, ["dog", "dog", "cat", "cat"])
    assert list(neuron.classes_) == ["cat", "dog"]
    assert list(neuron.predict(X)) == ["dog", "dog", "cat", "cat"]
    proba = neuron.predict_proba(X)
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)
    assert list(neuron.predict(X)) == list(neuron.classes_[(proba[:, 1] > 0.5).astype(int)])


def test_grid_search_over_l2_and_cross_validation(course_dir):
    x, y = rows(course_dir, "train")
    grid = GridSearchCV(Neuron(solver="gram", num_iterations=300, scaling="divide255"),
                        {"l2": [0.0, 10.0, 1000.0]}, cv=3).fit(x, y)
    assert grid.best_params_["l2"] in (0.0, 10.0, 1000.0)
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all() and len(grid.cv_results_["params"]) == 3
    norms = [np.linalg.norm(Neuron(solver="gram", num_iterations=300, scaling="divide255", l2=l2).fit(x, y).coef_)
             for l2 in (0.0, 1000.0)]
    assert norms[1] < norms[0]  # the penalty reaches the solver
    scores = cross_val_score(make_pipeline(StandardScaler(), Neuron(num_iterations=300)), x / 255, y, cv=3)
    assert scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()
    # the three-line comparison of docs/python.md
    assert LogisticRegression(max_iter=1000).fit(x / 255, y).score(x / 255, y) > 0.9


def test_early_stopping_and_threshold_auto_give_trains_model(course_dir, tmp_path):
    """The same validation split, early stopping and threshold as `train` with data.val_fraction."""
    sets = ["data.val_fraction=0.2", "train.early_stopping=true", "evaluate.threshold=auto", "train.solver=gram",
            "train.print_every=50", "train.num_iterations=1500"]
    train_cli(course_dir, tmp_path / "run", *sets)
    from pipeline import load_run

    x, y = rows(course_dir, "train")
    neuron = Neuron(solver="gram", learning_rate=0.005, num_iterations=1500, print_every=50, early_stopping=True,
                    validation_fraction=0.2, threshold="auto", scaling="divide255").fit(x, y)
    run = load_run(tmp_path / "run")
    np.testing.assert_allclose(neuron.coef_, run.coef_, atol=1e-9)
    assert neuron.threshold_ == run.threshold_ and neuron.n_iter_ < 1500
    stopped = json.loads((tmp_path / "run" / "run.json").read_text())["training"]["stopped_at"]
    assert neuron.n_iter_ == stopped == run.n_iter_


def test_class_weight_balanced_and_as_a_dict():
    X = np.array([[0.0], [0.2], [0.4], [0.6], [1.0]])
    y = np.array([0, 0, 0, 0, 1])
    plain = Neuron(num_iterations=500).fit(X, y).decision_function(X)
    balanced = Neuron(num_iterations=500, class_weight="balanced").fit(X, y).decision_function(X)
    as_dict = Neuron(num_iterations=500, class_weight={0: 5 / 8, 1: 5 / 2}).fit(X, y).decision_function(X)
    np.testing.assert_allclose(as_dict, balanced, rtol=1e-12)  # balanced: m / (2 * count of the class)
    assert (balanced > plain).all()  # the rare positive class pulls harder


def test_parameters_are_config_keys_with_the_configs_defaults():
    params = inspect.signature(Neuron).parameters
    assert set(KEYS) | {"verbose"} == set(params)
    defaults = Config()
    for name, key in KEYS.items():
        section, field = key.split(".")
        if params[name].default is None:
            continue  # tol: the config's default, when the config has the key
        assert key in ALL_KEYS
        if name in ("learning_rate", "scaling"):
            continue  # auto rather than 0.005; X as given rather than /255 (the class docstring says why)
        assert params[name].default == getattr(getattr(defaults, section), field), name
    # keys left out: about data on disk or a Dask cluster, not an array in memory
    left_out = {k for k in ALL_KEYS if k.startswith("train.")} - set(KEYS.values())
    assert left_out == {"train.streaming", "train.chunk_size", "train.memory_budget", "train.engine",
                        "train.scheduler", "train.seed"}


@pytest.mark.parametrize("params, words", [
    ({"learning_rate": -1}, "Neuron: learning_rate (train.learning_rate) must be > 0, got -1"),
    ({"solver": "newton"}, "Neuron: solver (train.solver) must be one of auto, primal, gram, lbfgs"),
    ({"num_iterations": 1.5}, "Neuron: num_iterations (train.num_iterations) must be a whole number, got 1.5"),
    ({"l2": "auto"}, "Neuron: l2 auto needs solver lbfgs"),
    ({"l2": "auto", "solver": "lbfgs"}, "Neuron: l2 auto needs a validation split: set validation_fraction above 0"),
    ({"early_stopping": True}, "Neuron: early_stopping needs a validation split: set validation_fraction above 0"),
    ({"threshold": "auto"}, "Neuron: threshold 'auto' needs a validation split: set validation_fraction above 0"),
    ({"scaling": "minmax"}, "Neuron: scaling (features.scaling) must be one of divide255, standardize"),
    ({"class_weight": {2: 1.0}}, "Neuron: class_weight names 2, not a label of y"),
])
def test_bad_parameters_are_refused_by_fit_naming_them(params, words):
    neuron = Neuron(**params)
    assert neuron.get_params()[next(iter(params))] == next(iter(params.values()))  # stored unchanged
    with pytest.raises(ValueError) as e:
        neuron.fit(np.eye(4), [0, 1, 0, 1])
    assert str(e.value).startswith(words)


def test_three_classes_are_refused():
    with pytest.raises(ValueError, match="Only binary classification is supported: Neuron needs y of 2 classes, "
                                         "got 3 classes"):
        Neuron().fit(np.eye(3), [0, 1, 2])


def test_import_pipeline_stays_cheap():
    code = ("import sys, pipeline, pipeline.cli; print(sorted(m for m in sys.modules "
            "if m.startswith(('sklearn', 'scipy', 'pipeline.estimator', 'pipeline.library'))))")
    assert run_python("-c", code, check=0).stdout == "[]\n"


def test_without_scikit_learn_pipeline_imports_and_neuron_says_what_to_install():
    code = ("import sys; sys.modules['sklearn'] = None  # scikit-learn made unimportable\n"
            "import pipeline\n"
            "from pipeline import Neuron, load_images, load_run\n"
            "print(load_images([]).shape)\n"
            "try:\n    Neuron()\nexcept ImportError as e:\n    print(e)\n")
    result = run_python("-c", code, check=0)
    assert result.stdout == "(0, 64, 64, 3)\npipeline.Neuron needs scikit-learn: pip install 'catneuron[sklearn]'\n"


def test_lbfgs_reaches_logistic_regressions_optimum_and_l2_auto_chooses_on_validation():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=300, n_features=40, n_informative=10, random_state=0)
    neuron = Neuron(solver="lbfgs", l2=3.0).fit(X, y)
    # the same objective: scikit-learn's C sum(loss) + ||w||^2 / 2 is m C (mean loss + l2/(2m) ||w||^2) at C = 1/l2
    reference = LogisticRegression(C=1 / 3.0, tol=1e-10, max_iter=10_000).fit(X, y)
    assert neuron.converged_ and neuron.n_iter_ < neuron.num_iterations
    np.testing.assert_allclose(neuron.coef_, reference.coef_, rtol=1e-4, atol=1e-5)  # tol 1e-6 on the gradient
    np.testing.assert_allclose(neuron.intercept_, reference.intercept_, rtol=1e-4, atol=1e-5)
    auto = Neuron(solver="lbfgs", l2="auto", validation_fraction=0.25).fit(X, y)
    assert auto.converged_ and auto.l2_ > 0 and auto.get_params()["l2"] == "auto"  # the parameter is kept as given
    assert auto.score(X, y) > 0.8
