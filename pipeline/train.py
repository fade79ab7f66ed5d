"""The train stage: data -> features -> gradient descent -> a run folder with model, costs, metrics and report."""
import contextlib
import dataclasses
import shutil
import time
import types
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline import PipelineError, data, l2path, solvers, streaming
from pipeline.artifacts import Model, new_run_dir, save_model
from pipeline.config import dump_config
from pipeline.evaluate import choose_threshold, evaluate
from pipeline.features import features
from pipeline.model import Diverged, cross_entropy
from pipeline.files import write_text
from pipeline.provenance import provenance, write_run_json
from pipeline.report import write_run_report


class Fit(NamedTuple):
    """A fit: w (n_x, 1) float64, b, the recorded costs and their iterations, and how it ended (train.solver
    lbfgs: solvers.lbfgs's dict; gradient descent: None until descent_ended says)."""
    w: np.ndarray
    b: float
    costs: list
    iterations: list
    ended: dict = None


def fit(X, Y, train_config, on_cost=None, on_step=None, monitor=None, weights=None):
    """Train from zeros on X (n_x, m), Y (1, m), with the solver train_config names (its learning_rate a number:
    see step_size for auto); monitor and weights (1, m) as solvers.primal takes them.

    X is an array, or a streaming.Chunks reading it from HDF5 (primal or lbfgs). Returns w (n_x, 1) float64,
    b and the recorded costs; fit_ended also says how the fit ended.
    """
    return fit_ended(X, Y, train_config, on_cost, on_step, monitor, weights)[:3]


def fit_ended(X, Y, train_config, on_cost=None, on_step=None, monitor=None, weights=None, start=None):
    """fit, returning a Fit whose ended is {"converged", "iterations", "grad_norm", "passes", "stop"}: for
    gradient descent, the gradient's largest component at the final weights against train.tol. train.l2 is a
    number here (auto is train's path); start, a (w (n_x, 1), b), is where lbfgs starts instead of zeros."""
    with engine(X, Y, train_config, weights) as run:
        result = run.fit(train_config, on_cost, on_step, monitor, start)
        if result.ended is None:
            steps = monitor.stopped if monitor is not None and monitor.stopped is not None else None
            result = result._replace(ended=descent_ended(run.gradient(train_config.l2), result, train_config, steps))
        return result


def descent_ended(gradient, result, train_config, stopped=None):
    """How gradient descent ended (see solvers.lbfgs): one more pass for the gradient at result's w and b;
    stopped: the iteration early stopping stopped at, or None."""
    _, dw, db = gradient(result.w.astype(train_config.dtype), result.b)
    norm = max(float(np.max(np.abs(dw))), abs(db))
    steps = train_config.num_iterations if stopped is None else stopped
    converged = norm <= train_config.tol
    stop = "early stopping" if stopped is not None else "converged" if converged else "iteration limit"
    return {"converged": converged, "iterations": steps, "grad_norm": norm, "passes": steps + 1 + (stopped is not None),
            "stop": stop}


@contextlib.contextmanager
def engine(X, Y, train_config, weights=None):
    """What fits X (n_x, m), Y (1, m) with weights (1, m) or None, for train.engine: an object with
    curvature(l2) (solvers.curvature), gradient(l2) (solvers.primal_gradient's function) and
    fit(train_config, on_cost, on_step, monitor, start=None) -> Fit (start: lbfgs's (w, b) to start from)."""
    if train_config.engine == "dask":
        from pipeline import dask_engine  # only here: the local engine never imports Dask

        with dask_engine.session(X, Y, train_config, weights) as run:
            yield run
        return
    n_x, dtype, blocks = X.shape[0], train_config.dtype, []

    def gradient(l2):
        if not blocks:  # made once: in memory, a view of X (training_features makes it Fortran-ordered in dtype)
            blocks.append(X if isinstance(X, streaming.Chunks) else solvers.in_memory_blocks(X, dtype))
        return solvers.primal_gradient(blocks[0], Y, dtype, l2, weights)

    def local_fit(train_config, on_cost=None, on_step=None, monitor=None, start=None):
        solver = solver_for(X, train_config)
        if solver == "lbfgs":
            return Fit(*solvers.lbfgs(gradient(train_config.l2), n_x, train_config, on_cost, on_step, monitor, start))
        if solver == "gram":
            w, b, costs = solvers.gram(X, Y, train_config, on_cost, on_step, monitor, weights)
        else:
            w, b, costs = solvers.descend_on(gradient(train_config.l2), n_x, train_config, on_cost, on_step, monitor)
        return Fit(w, b, costs, [k * train_config.print_every for k in range(len(costs))])

    yield types.SimpleNamespace(curvature=lambda l2: curvature(X, Y, l2, weights), gradient=gradient, fit=local_fit)


# train.learning_rate auto takes this multiple of 1/L: below the stability limit 2/L, where every step lowers
# the cost, with a quarter of the limit to spare for the estimate of L (docs/training.md)
AUTO_STEP = 1.5


def curvature(X, Y, l2, weights=None):
    """L of the cost on X (n_x, m) (an array or streaming.Chunks): see solvers.curvature."""
    blocks = X if isinstance(X, streaming.Chunks) else [(slice(None), X)]
    return solvers.curvature(blocks, X.shape[0], Y.shape[1], l2, weights)


def step_size(curvature_of, train_config, log=None):
    """(learning rate, L or None): train.learning_rate, or AUTO_STEP / L for auto, L = curvature_of(l2) (an
    engine's curvature). With train.stability_check, a fixed rate above the stability limit 2/L gets a warning
    (log) naming the limit and what auto would use."""
    lr = train_config.learning_rate
    if lr != "auto" and not train_config.stability_check:
        return lr, None
    L = curvature_of(train_config.l2)
    if lr == "auto":
        lr = AUTO_STEP / L
        log and log(f"learning rate: auto = {lr:.4g} ({AUTO_STEP}/L; stability limit 2/L = {2 / L:.4g})")
    elif lr > 2 / L:
        log and log(f"warning: train.learning_rate {lr:g} is above this data's stability limit 2/L = {2 / L:.4g}: "
                    f"the first steps will overshoot and training may diverge; "
                    f"train.learning_rate: auto would use {AUTO_STEP / L:.4g}")
    return lr, L


# what train says when early stopping keeps iteration 0 (w = 0, b = 0)
UNTRAINED = ("warning: early stopping kept iteration 0, where the validation cost was lowest: the saved model is the "
             "untrained starting point (p = 0.5 for every image), as validation got worse from the first steps "
             "(checked at iterations 1, 2, 5, 10, 20, 50, ... and every print_every); try more images, "
             "train.solver lbfgs with train.l2 auto, or train.early_stopping: false")


def class_weights(Y):
    """(1, m) weights of train.class_weight balanced: m / (2 * examples of the class), so both classes weigh
    the same in the cost and the weights average to 1."""
    m, positives = Y.shape[1], int(np.sum(Y == 1))
    return np.where(Y == 1, m / (2 * positives), m / (2 * (m - positives)))


class Validation:
    """The monitor of early stopping: at each iteration it is called for (solvers.checked), the validation cost
    (log loss) of the current w (n_x, 1) and b; keeps the weights of the lowest one, and says stop after patience
    checks every `every` iterations without a lower one (patience None: never). The finer checks before the
    first `every` only offer weights: they do not count towards patience (the first steps may overshoot)."""

    def __init__(self, X, Y, patience=None, every=1):
        self.X, self.Y, self.patience, self.every = X, Y, patience, every  # X (n_x, m_val) float64, Y (1, m_val)
        self.costs, self.best, self.best_iteration, self.since, self.stopped = {}, np.inf, None, 0, None
        self.w = self.b = None

    def costs_at(self, iterations):
        """The validation costs of the given checked iterations (those costs.csv records)."""
        return [self.costs[i] for i in iterations]

    def __call__(self, i, w, b):
        cost = cross_entropy(w.astype(np.float64).T @ self.X + b, self.Y)
        self.costs[i] = cost
        if cost < self.best:
            self.best, self.best_iteration, self.since = cost, i, 0
            self.w, self.b = w.astype(np.float64, copy=True), float(b)
        elif i % self.every == 0:
            self.since += 1
        if self.patience is not None and self.since >= self.patience:
            self.stopped = i
        return self.stopped is not None


def solver_for(X, train_config):
    """'streaming' (primal over HDF5 chunks), 'primal', 'gram' or 'lbfgs': what fit runs for X (n_x, m)."""
    if isinstance(X, streaming.Chunks):
        assert train_config.solver != "gram", "streaming.streams refuses gram"
        return "lbfgs" if train_config.solver == "lbfgs" else "streaming"
    if train_config.solver != "auto":
        return train_config.solver
    n_x, m = X.shape
    return solvers.choose_solver(m, n_x, train_config.num_iterations, np.dtype(train_config.dtype).itemsize)


def load_data(config, **prepare_options):
    """The (train, test) Datasets the config names: see load_splits (the validation split left out)."""
    train_set, _, test_set = load_splits(config, **prepare_options)
    return train_set, test_set


def load_splits(config, **prepare_options):
    """The (train, validation or None, test) Datasets the config names: the course files, or a folder
    dataset prepared first (only when its sources or settings changed; prepare_options go to
    pipeline.prepare.prepare). The training images stay on disk when training streams.

    The validation split is data.val_fraction of each class: val.h5 of a folder dataset, or carved from the
    course's training file (seeded by data.split_seed, stratified; that file is then read into memory)."""
    val_set = None
    if config.data.source == "course":
        train_set, test_set = data.load_course(Path(config.data.dir), lazy_train=True)
        if config.data.val_fraction:
            train_set, val_set = carve(train_set, config.data.val_fraction, config.data.split_seed)
    else:
        from pipeline.prepare import prepare, summary

        folder, report, built = prepare(config, **prepare_options)
        for line in summary(folder, report) if built else ():
            prepare_options.get("log", lambda message: None)(line)
        train_set = data.load_split(folder / "train.h5", "train", lazy=True)
        test_set = data.load_split(folder / "test.h5", "test")
        if sum(report["counts"].get("val", {}).values()):
            val_set = data.load_split(folder / "val.h5", "val")
    n_x = int(np.prod(train_set.x.shape[1:]))
    if not streaming.streams(config.train, train_set.m, n_x):
        train_set = dataclasses.replace(train_set, x=train_set.x[()])  # read the images into memory
    return train_set, val_set, test_set


def split_names(Y, fraction, seed):
    """'train' or 'val' for each column of Y (1, m): fraction of each class to validation, chosen as prepare
    splits a folder (pipeline.scan.split); shared by carve and pipeline.Neuron."""
    from pipeline.scan import split

    return np.array(split([types.SimpleNamespace(label=int(v)) for v in Y[0]], 0.0, fraction, seed))


def carve(train_set, fraction, seed):
    """(train, validation) Datasets: fraction of each class of train_set moved to validation (split_names)."""
    names = split_names(train_set.y, fraction, seed)
    x = train_set.x[()]  # (m, h, w, 3), in memory
    source = np.array(train_set.source or [""] * train_set.m, dtype=object)  # (m,), kept beside each image
    parts = [dataclasses.replace(train_set, x=x[names == s], y=train_set.y[:, names == s],
                                 source=train_set.source and tuple(source[names == s])) for s in ("train", "val")]
    if not parts[1].m:
        raise PipelineError(f"data.val_fraction {fraction} leaves no validation image of {train_set.m}; raise it")
    if len(np.unique(parts[0].y)) < 2:
        raise PipelineError(f"data.val_fraction {fraction} leaves training images of one class only; lower it")
    return tuple(parts)


def training_features(train_set, config):
    """The scaled X (n_x, m) to train on and its fitted Scaler. Images in memory give the one scaled copy of X,
    an array in train.dtype filled block by block; images on disk give Chunks reading them from HDF5 on every
    pass (kept in memory up to train.memory_budget MiB)."""
    train, x = config.train, train_set.x
    scaler = streaming.fit_scaler(config.features.scaling, x, train.chunk_size)
    X = streaming.Chunks(x, scaler, train.chunk_size, train.dtype, train.memory_budget * streaming.MIB)
    return (X.materialize() if isinstance(x, np.ndarray) and train.engine == "local" else X), scaler


def train(config, train_set, test_set, name, run_dir=None, on_cost=None, on_step=None, overrides=(),
          config_file=None, val_set=None, log=None, logits=None):
    """Train on train_set as the config says and write the run folder. Returns (run_dir, model, metrics).

    With a validation Dataset val_set, its cost is recorded beside the training cost, early stopping and
    evaluate.threshold auto use it, and metrics.json gains a validation section. log(message) gets the
    chosen learning rate and warnings. A dict logits receives the model's Z (1, m) of each split evaluated.

    The run folder is claimed before training (so a clash is reported at once) and stays empty until
    training has succeeded; a failed run removes it again. run.json (provenance, with the overrides and
    config_file it is given, and what training chose: learning rate, best iteration, threshold) is written
    last, so a folder holding it is a finished run.
    """
    started, clock = time.time(), time.perf_counter()
    check_choices(config.train, val_set is not None)
    for key, on in (("train.early_stopping", config.train.early_stopping),
                    ("evaluate.threshold auto", config.evaluate.threshold == "auto")):
        if on and val_set is None:
            raise PipelineError(f"{key} needs a validation split: set data.val_fraction above 0 "
                                "(the test split is never used to choose anything)")
    run_dir = new_run_dir(name, run_dir)
    with _removed_unless_finished(run_dir):
        X, scaler = training_features(train_set, config)
        Y = train_set.y
        weights = class_weights(Y) if config.train.class_weight == "balanced" else None
        val = None if val_set is None else (features(val_set.x, scaler), val_set.y)  # (n_x, m_val), (1, m_val)
        result, monitor, lr, L, path = fit_run(config.train, X, Y, weights, val, on_cost, on_step, log)
        w, b, costs = result.w, result.b, result.costs
        if config.train.early_stopping:
            w, b = monitor.w, monitor.b
            if monitor.best_iteration == 0:  # the zeros it started from: the run would look normal otherwise
                log and log(UNTRAINED)
        threshold = config.evaluate.threshold
        model = Model(w=w, b=b, image_shape=train_set.x.shape[1:], scaler=scaler, classes=train_set.classes,
                      threshold=0.5 if threshold == "auto" else threshold, fit=config.data.fit,
                      resample=config.data.resample)
        if threshold == "auto":  # on the probabilities as the model computes them for predict
            threshold = choose_threshold(val_set.y, model.predict_proba(val_set.x), config.evaluate.threshold_metric)
            model = dataclasses.replace(model, threshold=threshold)
        write_text(run_dir / "config.yaml", dump_config(config))
        save_model(run_dir / "model.npz", model)
        validation_costs = monitor and monitor.costs_at(result.iterations)
        write_text(run_dir / "costs.csv", costs_csv(result.iterations, costs, validation_costs))
        logits = {} if logits is None else logits  # each split's Z (1, m): computed once, reused by the report
        metrics = evaluate(model, train_set, test_set, run_dir, config.evaluate.enlarge, val_set, logits, path)
        training = {"solver": config.train.solver, "learning_rate": lr,
                    "learning_rate_auto": config.train.learning_rate == "auto",
                    "stability_limit": None if L is None else 2 / L, "stopped_at": monitor and monitor.stopped,
                    "best_iteration": monitor and monitor.best_iteration,
                    "early_stopping": config.train.early_stopping, "threshold": threshold,
                    "threshold_auto": config.evaluate.threshold == "auto", "class_weight": config.train.class_weight,
                    **{key: result.ended[key] for key in ("converged", "iterations", "grad_norm", "passes", "stop")},
                    "tol": config.train.tol, "l2": next((p["l2"] for p in path if p["chosen"]), config.train.l2),
                    "l2_auto": config.train.l2 == "auto", "l2_path": path}
        record = {**provenance(config, overrides, config_file, started, time.perf_counter() - clock),
                  "training": training}
        # its Provenance section shows record
        write_run_report(run_dir, (train_set, test_set), config, record, logits["test"])
        write_run_json(run_dir, record)
    return run_dir, model, metrics


def check_choices(train_config, has_validation):
    """Refuse what the solver cannot do: l2 auto without lbfgs or a validation split, early stopping with lbfgs."""
    t = train_config
    if t.l2 == "auto" and t.solver != "lbfgs":
        raise PipelineError(f"train.l2 auto needs train.solver lbfgs (each l2 of the path is fitted to convergence; "
                            f"gradient descent would stop short), got train.solver {t.solver}")
    if t.l2 == "auto" and not has_validation:
        raise PipelineError("train.l2 auto needs a validation split: set data.val_fraction above 0 "
                            "(the test split is never used to choose anything)")
    if t.solver == "lbfgs" and t.early_stopping:
        raise PipelineError("train.early_stopping is for gradient descent: train.solver lbfgs fits to convergence; "
                            "set train.early_stopping: false and regularise with train.l2 (auto: chosen on validation)")


def fit_run(train_config, X, Y, weights, val, on_cost=None, on_step=None, log=None):
    """The fit train (and pipeline.Neuron) runs on X (n_x, m), Y (1, m), with validation (X_val (n_x, m_val)
    float64, Y_val (1, m_val)) or None: (Fit, the Validation monitor of its recorded iterations or None,
    learning rate or None, L or None, the l2 path or []). check_choices first."""
    def validation():
        if val is None:
            return None
        return Validation(*val, train_config.patience if train_config.early_stopping else None,
                          train_config.print_every)

    with engine(X, Y, train_config, weights) as run:  # on Dask, one cluster for L and the descent
        if train_config.solver == "lbfgs" and train_config.l2 == "auto":
            result, monitor, path = _l2_auto(run, train_config, val, validation, Y.shape[1], log)
            return result, monitor, None, None, path
        monitor = validation()
        if train_config.solver == "lbfgs":
            result = run.fit(train_config, on_cost, on_step, monitor)
            log and log(f"L-BFGS {l2path.sentence(result.ended)} (largest gradient component "
                        f"{result.ended['grad_norm']:.2g}, train.tol {train_config.tol:g})")
            return result, monitor, None, None, []
        lr, L = step_size(run.curvature, train_config, log)
        try:
            result = run.fit(dataclasses.replace(train_config, learning_rate=lr), on_cost, on_step, monitor)
        except Diverged as e:
            L = L or run.curvature(train_config.l2)
            raise Diverged(f"{e}, such as {AUTO_STEP / L:.2g} (what train.learning_rate: auto picks for this "
                           f"data; the stability limit 2/L is {2 / L:.2g})") from None
        stopped = monitor.stopped if monitor is not None else None
        final = (monitor.w, monitor.b) if train_config.early_stopping else (result.w, result.b)
        ended = descent_ended(run.gradient(train_config.l2), result._replace(w=final[0], b=final[1]),
                              train_config, stopped)
        return result._replace(ended=ended), monitor, lr, L, []


def _l2_auto(run, train_config, val, validation, m, log):
    """train.l2 auto on an engine run: the path (l2path.choose) with its fits stopped at l2path.PATH_TOL, then the
    chosen fit finished to train.tol from its weights. Returns (that Fit, its Validation monitor, the path)."""
    path_config = dataclasses.replace(train_config, tol=max(train_config.tol, l2path.PATH_TOL))

    def fit_at(l2, start):
        return run.fit(dataclasses.replace(path_config, l2=l2), None, None, None, start)

    def score(w, b):
        Z = w.T @ val[0] + b  # (1, m_val)
        return cross_entropy(Z, val[1]), float(np.mean((Z > 0) == (val[1] == 1)))

    best, path, found = l2path.choose(fit_at, score, m, log)
    for k, point in enumerate(path):
        point["chosen"] = k == best
    monitor, l2 = validation(), path[best]["l2"]
    result = run.fit(dataclasses.replace(train_config, l2=l2), None, None, monitor, (found.w, found.b))
    log and log(f"l2: auto = {l2:.4g}, the lowest validation cost of {len(path)} fits; from there, L-BFGS "
                f"{l2path.sentence(result.ended)} (largest gradient component {result.ended['grad_norm']:.2g})")
    passes = result.ended["passes"] + sum(point["passes"] for point in path)  # the whole path's
    return result._replace(ended={**result.ended, "passes": passes}), monitor, path


def costs_csv(iterations, costs, validation_costs=None):
    """costs.csv: `iteration,cost` rows at full precision (the iterations the costs were recorded at), with a
    validation_cost column when given."""
    columns = [costs] + ([validation_costs] if validation_costs else [])
    return "iteration,cost" + ",validation_cost" * bool(validation_costs) + "\n" + "".join(
        f"{i}," + ",".join(map(repr, row)) + "\n" for i, row in zip(iterations, zip(*columns)))


@contextlib.contextmanager
def _removed_unless_finished(folder):
    """On any error or interrupt, remove the run folder (new or empty when claimed) unless run.json, written
    last, made it a finished run: a half-written run is never left for `latest_run` to pick."""
    try:
        yield
    except BaseException:
        if not (folder / "run.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise
