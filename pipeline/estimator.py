"""pipeline.Neuron: the lesson's neuron as a scikit-learn classifier, trained by the project's own solvers.

X comes as rows, (m, n_features), scikit-learn's orientation; inside, the solvers get its transpose
X.T of shape (n_x, m), the course's. The parameters are the config's train keys (and features.scaling,
evaluate.threshold, data.val_fraction and data.split_seed): fit checks them with the config's own checks,
and trains through pipeline.train.engine as `train` does. load_run turns a run folder or model.npz back
into a fitted Neuron (pipeline/library.py).
"""
import sys
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.config import Config, with_values
from pipeline.features import fit_scaler
from pipeline.model import sigmoid

INSTALL = "pipeline.Neuron needs scikit-learn: pip install 'catneuron[sklearn]'"

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError:  # the [sklearn] extra is not installed: `import pipeline` works, making a Neuron says why not
    class BaseEstimator:
        def __new__(cls, *args, **kwargs):
            raise ImportError(INSTALL)

    class ClassifierMixin:
        pass

# Neuron's parameter -> the config key it sets; a parameter left at None keeps the config's default
KEYS = {"learning_rate": "train.learning_rate", "num_iterations": "train.num_iterations",
        "solver": "train.solver", "l2": "train.l2", "tol": "train.tol", "dtype": "train.dtype",
        "class_weight": "train.class_weight", "early_stopping": "train.early_stopping",
        "patience": "train.patience", "print_every": "train.print_every",
        "stability_check": "train.stability_check", "scaling": "features.scaling",
        "threshold": "evaluate.threshold", "threshold_metric": "evaluate.threshold_metric",
        "validation_fraction": "data.val_fraction", "split_seed": "data.split_seed"}
_T = Config().train  # the train keys' defaults are the config's, but learning_rate: see Neuron
FLOATS = (np.float64, np.float32)  # what X is kept as: the solvers cast it to train.dtype once


class Neuron(ClassifierMixin, BaseEstimator):
    """A binary classifier: p = sigmoid(w.T x + b), trained from zeros by full-batch gradient descent.

    Each parameter means what its config key means (docs/config.md), with the config's default, but for
    learning_rate: "auto" (1.5/L of the data) rather than the lesson's 0.005, which diverges on features
    larger than the lesson's pixels / 255. scaling None uses X as given (the lesson's X / 255 is yours to
    do), "divide255" or "standardize" scale raw pixels inside the estimator. validation_fraction carves a
    stratified validation split from X (split_seed), which early_stopping, threshold "auto" and l2 "auto"
    need. verbose prints the lesson's "Cost after iteration i" lines.

    Fitted: coef_ (1, n_features), intercept_ (1,), classes_ (the two labels; the second is the positive
    one), n_features_in_, n_iter_ (iterations taken), converged_ (the gradient's largest component reached
    tol), costs_ (the recorded costs), learning_rate_ (gradient descent's step: the number auto chose; None for
    lbfgs), l2_ (the l2 used: l2 "auto"'s choice on the validation split), threshold_ (p above it predicts
    classes_[1]).
    """

    def __init__(self, learning_rate="auto", num_iterations=_T.num_iterations, solver=_T.solver, l2=_T.l2, tol=_T.tol,
                 dtype=_T.dtype, class_weight=_T.class_weight, early_stopping=_T.early_stopping,
                 patience=_T.patience, print_every=_T.print_every, stability_check=_T.stability_check,
                 scaling=None, threshold=0.5, threshold_metric="accuracy", validation_fraction=0.0, split_seed=0,
                 verbose=False):
        self.learning_rate, self.num_iterations, self.solver, self.l2 = learning_rate, num_iterations, solver, l2
        self.tol, self.dtype, self.class_weight, self.early_stopping = tol, dtype, class_weight, early_stopping
        self.patience, self.print_every, self.stability_check = patience, print_every, stability_check
        self.scaling, self.threshold, self.threshold_metric = scaling, threshold, threshold_metric
        self.validation_fraction, self.split_seed, self.verbose = validation_fraction, split_seed, verbose

    def config(self):
        """The Config these parameters make, checked by the config's own checks (ValueError naming the key)."""
        values = {key: getattr(self, name) for name, key in KEYS.items() if getattr(self, name) is not None}
        if self.class_weight is None or isinstance(self.class_weight, dict):  # dict: see _weights
            values["train.class_weight"] = "none"
        try:
            return with_values(Config(), values, "Neuron")
        except PipelineError as e:  # name the parameter the user set, and its key
            message = str(e)
            for name, key in KEYS.items():
                message = message.replace(f"Neuron: {key} ", f"Neuron: {name} ({key}) ", 1)
            raise ValueError(message) from None

    def fit(self, X, y, sample_weight=None):
        """Train on X (m, n_features) and y (m,) of two classes; sample_weight (m,) weighs each example's loss
        (times class_weight's). Returns self."""
        from pipeline.train import check_choices, fit_run

        config = self.config()
        X, y = validate_data(self, X, y, dtype=FLOATS)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            n = len(self.classes_)  # scikit-learn's checks look for these words
            raise ValueError(f"Only binary classification is supported: Neuron needs y of 2 classes, got {n} "
                             f"class{'es' * (n != 1)}")
        Y = (y == self.classes_[1]).astype(np.float64).reshape(1, -1)  # (1, m)
        train, val = _split(Y, config)
        weights = self._weights(y[train], Y[:, train], config)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)[train].reshape(1, -1)
            if not sample_weight.any():
                raise ValueError("Neuron: sample_weight is zero for every training example")
            weights = sample_weight if weights is None else weights * sample_weight  # (1, m_train)
        self.scaler_ = None if self.scaling is None else fit_scaler(self.scaling, X[train].T)
        X_train = self._features(X[train])  # (n_x, m_train)
        try:
            check_choices(config.train, val is not None)
        except PipelineError as e:  # in the parameters' names: train.l2 -> l2, data.val_fraction -> ...
            message = str(e)
            for name, key in KEYS.items():
                message = message.replace(key, name)
            raise ValueError(f"Neuron: {message}") from None
        val_data = None if val is None else (self._features(X[val]).astype(np.float64), Y[:, val])  # (n_x, m_val)
        say = (lambda i, cost: print(f"Cost after iteration {i}: {cost:f}")) if self.verbose else None
        log = self.verbose and (lambda m: print(m, file=sys.stderr))
        result, monitor, lr, _, path = fit_run(config.train, X_train, Y[:, train], weights, val_data, say, None, log)
        w, b = (monitor.w, monitor.b) if config.train.early_stopping else (result.w, result.b)
        self.coef_, self.intercept_ = w.T.astype(np.float64), np.array([float(b)])  # (1, n_x), (1,)
        self.n_iter_, self.converged_ = result.ended["iterations"], result.ended["converged"]
        self.costs_, self.learning_rate_ = list(result.costs), lr
        self.l2_ = next((p["l2"] for p in path if p["chosen"]), config.train.l2)
        self.threshold_ = config.evaluate.threshold
        if self.threshold_ == "auto":
            from pipeline.evaluate import choose_threshold

            P = self.predict_proba(X[val])[:, 1].reshape(1, -1)  # (1, m_val)
            self.threshold_ = choose_threshold(Y[:, val], P, config.evaluate.threshold_metric)
        return self

    def _weights(self, y, Y, config):
        """(1, m) weights of the examples' losses, or None: class_weight "balanced" as train computes it, or a
        dict {label: weight} (scikit-learn's form; a label it leaves out weighs 1)."""
        from pipeline.train import class_weights

        if isinstance(self.class_weight, dict):
            unknown = [c for c in self.class_weight if c not in self.classes_]
            if unknown:
                raise ValueError(f"Neuron: class_weight names {unknown[0]!r}, not a label of y ({self.classes_})")
            return np.array([[float(self.class_weight.get(c, 1.0)) for c in y]])  # (1, m)
        return class_weights(Y) if config.train.class_weight == "balanced" else None

    def _features(self, X):
        """Rows X (m, n_x) -> the solvers' X (n_x, m): the transpose, scaled when scaling is set."""
        return X.T if self.scaler_ is None else self.scaler_.transform(X.T)

    def decision_function(self, X):
        """z = w.T x + b for each row of X (m, n_features): shape (m,); above 0 leans to classes_[1]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FLOATS, reset=False)
        return (self.coef_ @ self._features(X) + self.intercept_[0]).reshape(-1)  # (1, n_x) @ (n_x, m)

    def predict_proba(self, X):
        """(m, 2): the probability of classes_[0] and of classes_[1] for each row of X."""
        p = sigmoid(self.decision_function(X))  # (m,)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        """classes_[1] where its probability is above threshold_, else classes_[0]: shape (m,)."""
        check_is_fitted(self)
        return self.classes_[(self.predict_proba(X)[:, 1] > self.threshold_).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # one neuron, one probability: two classes only
        return tags

    def save(self, path):
        """Write a model.npz that `catneuron predict --model PATH` takes. The neuron must see pixels the way
        predict gives them: scaling "divide255" or "standardize", n_features = h * w * 3."""
        from pipeline.artifacts import Model, save_model
        from pipeline.names import check_class_names

        check_is_fitted(self)
        if self.scaler_ is None:
            raise ValueError("Neuron.save: scaling=None means X was scaled outside the estimator, which predict "
                             "cannot repeat; fit with scaling='divide255' (or 'standardize') on raw pixels")
        shape, fit, resample = getattr(self, "_image", None) or (_square(self.n_features_in_), "squash", "bilinear")
        classes = check_class_names([str(c) for c in self.classes_], "Neuron.save: classes_")
        save_model(Path(path), Model(w=self.coef_.T, b=float(self.intercept_[0]), image_shape=shape,
                                     scaler=self.scaler_, classes=classes, threshold=float(self.threshold_),
                                     fit=fit, resample=resample))
        return Path(path)

    def report_html(self):
        """The run's report.html, shown inline by Jupyter (in an iframe, its styles kept to itself)."""
        run_dir = getattr(self, "_run_dir", None)
        if run_dir is None or not (run_dir / "report.html").is_file():
            raise ValueError("report_html: this Neuron has no run report; load_run a run folder that holds one")
        from pipeline.library import Report

        return Report(run_dir / "report.html")


def _split(Y, config):
    """(train rows, validation rows or None): data.val_fraction of each class, as train carves the course file."""
    if not config.data.val_fraction:
        for key, on in (("early_stopping", config.train.early_stopping),
                        ("threshold 'auto'", config.evaluate.threshold == "auto")):
            if on:
                raise ValueError(f"Neuron: {key} needs a validation split: set validation_fraction above 0")
        return slice(None), None
    from pipeline.train import split_names

    names = split_names(Y, config.data.val_fraction, config.data.split_seed)
    train, val = np.flatnonzero(names == "train"), np.flatnonzero(names == "val")
    if not len(val) or len(np.unique(Y[0, train])) < 2:
        raise ValueError(f"Neuron: validation_fraction {config.data.val_fraction} leaves no validation row or "
                         f"training rows of one class only (of {Y.shape[1]} rows)")
    return train, val


def _square(n_features):
    """(s, s, 3) for n_features = 3 s^2, the image shape predict resizes to; else a ValueError."""
    s = round((n_features / 3) ** 0.5)
    if 3 * s * s != n_features:
        raise ValueError(f"Neuron.save: {n_features} features are not the pixels of a square RGB image (3 s^2)")
    return (s, s, 3)
