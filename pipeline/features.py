"""Turn images of shape (m, h, w, 3) into the feature matrix X of shape (n_x, m), one column per example."""
from dataclasses import dataclass

import numpy as np

SCALINGS = ("divide255", "standardize")


def flatten(x):
    """(m, h, w, 3) uint8 -> (n_x, m) float64 with n_x = h*w*3, exactly as the lesson does."""
    m = x.shape[0]
    X = x.reshape(m, -1).T.astype(np.float64)  # (m, h*w*3) -> (n_x, m)
    assert X.shape == (x[0].size, m)
    return X


@dataclass(frozen=True)
class Scaler:
    """How pixel values become features: divide255 (the lesson's) or standardize with a training-set fit.

    mean and std are of shape (n_x, 1) for standardize and of shape (0, 1) for divide255.
    """

    kind: str
    mean: np.ndarray
    std: np.ndarray

    def transform(self, X):
        """Scale X of shape (n_x, m), float or the raw uint8 pixels; returns float64."""
        if self.kind == "divide255":
            return X / 255.0
        return (X - self.mean) / self.std  # (n_x, m) - (n_x, 1): one mean per feature, broadcast over examples


def fit_scaler(kind, X):
    """Fit a Scaler of the given kind on the training features X of shape (n_x, m) (unused by divide255)."""
    assert kind in SCALINGS, kind
    if kind == "divide255":
        empty = np.zeros((0, 1))
        return Scaler(kind, empty, empty)
    return standardizer(X.mean(axis=1, keepdims=True), X.std(axis=1, keepdims=True))


def standardizer(mean, std):
    """The standardize Scaler from the training set's per-feature mean and std, both of shape (n_x, 1)."""
    std = np.where(std == 0, 1.0, std)  # a pixel constant over the training set carries no information; keep it at 0
    return Scaler("standardize", mean, std)


def features(x, scaler):
    """Images (m, h, w, 3) uint8 -> scaled X of shape (n_x, m) float64."""
    # the same numbers as scaler.transform(flatten(x)), in one pass: uint8 -> float64 is exact either way
    return scaler.transform(x.reshape(x.shape[0], -1).T)  # (m, h*w*3) -> (n_x, m)


def scaled_block(x, scaler, dtype=np.float64):
    """Images (k, h, w, 3) uint8 -> scaled X (n_x, k) in dtype: the numbers of features(x, scaler) rounded to
    dtype, computed in one k-example buffer (no (n_x, k) float64 temporary in float32 but for standardize)."""
    k, dtype = x.shape[0], np.dtype(dtype)
    work = dtype if scaler.kind == "divide255" else np.float64  # standardize rounds once, from float64, as features
    X = x.reshape(k, -1).astype(work)  # (k, n_x): uint8 -> float is exact
    if scaler.kind == "divide255":
        # float32(x) / float32(255) is correctly rounded, so it equals float64 x / 255 rounded to float32 for all
        # 256 pixel values (tests/test_features.py checks them)
        X /= work.type(255)
    else:
        X -= scaler.mean.T  # (k, n_x) - (1, n_x)
        X /= scaler.std.T
    return X.astype(dtype, copy=False).T  # (k, n_x) -> (n_x, k), Fortran-ordered
