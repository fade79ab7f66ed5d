"""The train stage: data -> features -> gradient descent -> a run folder with model, costs, metrics and report."""
import contextlib
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from pipeline import data, solvers, streaming
from pipeline.artifacts import Model, new_run_dir, save_model
from pipeline.config import dump_config
from pipeline.evaluate import evaluate
from pipeline.files import write_text
from pipeline.provenance import provenance, write_run_json
from pipeline.report import write_run_report


def fit(X, Y, train_config, on_cost=None, on_step=None):
    """Gradient descent from zeros on X (n_x, m), Y (1, m), with the solver train_config names.

    X is an array, or a streaming.Chunks reading it from HDF5 (always the primal solver). Returns w (n_x, 1)
    float64, b and the recorded costs.
    """
    if train_config.engine == "dask":
        from pipeline import dask_engine  # only here: the local engine never imports Dask

        return dask_engine.fit(X, Y, train_config, on_cost, on_step)
    solver = solver_for(X, train_config)
    if solver == "streaming":
        return solvers.primal(X, Y, X.shape[0], train_config, on_cost, on_step)
    if solver == "gram":
        return solvers.gram(X, Y, train_config, on_cost, on_step)
    return solvers.primal(solvers.in_memory_blocks(X, train_config.dtype), Y, X.shape[0], train_config,
                          on_cost, on_step)


def solver_for(X, train_config):
    """'streaming' (primal over HDF5 chunks), 'primal' or 'gram': what fit runs for X (n_x, m)."""
    if isinstance(X, streaming.Chunks):
        assert train_config.solver != "gram", "streaming.streams refuses gram"
        return "streaming"
    if train_config.solver != "auto":
        return train_config.solver
    n_x, m = X.shape
    return solvers.choose_solver(m, n_x, train_config.num_iterations, np.dtype(train_config.dtype).itemsize)


def load_data(config, **prepare_options):
    """The (train, test) Datasets the config names: the course files, or a folder dataset prepared first
    (only when its sources or settings changed; prepare_options go to pipeline.prepare.prepare).
    The training images stay on disk when training streams."""
    if config.data.source == "course":
        train_set, test_set = data.load_course(Path(config.data.dir), lazy_train=True)
    else:
        from pipeline.prepare import prepare, summary

        folder, report, built = prepare(config, **prepare_options)
        for line in summary(folder, report) if built else ():
            prepare_options.get("log", lambda message: None)(line)
        train_set = data.load_split(folder / "train.h5", "train", lazy=True)
        test_set = data.load_split(folder / "test.h5", "test")
    n_x = int(np.prod(train_set.x.shape[1:]))
    if not streaming.streams(config.train, train_set.m, n_x):
        train_set = dataclasses.replace(train_set, x=train_set.x[()])  # read the images into memory
    return train_set, test_set


def training_features(train_set, config):
    """The scaled X (n_x, m) to train on and its fitted Scaler. Images in memory give the one scaled copy of X,
    an array in train.dtype filled block by block; images on disk give Chunks reading them from HDF5 on every
    pass (kept in memory up to train.memory_budget MiB)."""
    train, x = config.train, train_set.x
    scaler = streaming.fit_scaler(config.features.scaling, x, train.chunk_size)
    X = streaming.Chunks(x, scaler, train.chunk_size, train.dtype, train.memory_budget * streaming.MIB)
    return (X.materialize() if isinstance(x, np.ndarray) and train.engine == "local" else X), scaler


def train(config, train_set, test_set, name, run_dir=None, on_cost=None, on_step=None, overrides=(),
          config_file=None):
    """Train on train_set as the config says and write the run folder. Returns (run_dir, model, metrics).

    The run folder is claimed before training (so a clash is reported at once) and stays empty until
    training has succeeded; a failed run removes it again. run.json (provenance, with the overrides and
    config_file it is given) is written last, so a folder holding it is a finished run.
    """
    started, clock = time.time(), time.perf_counter()
    run_dir = new_run_dir(name, run_dir)
    with _removed_unless_finished(run_dir):
        X, scaler = training_features(train_set, config)
        w, b, costs = fit(X, train_set.y, config.train, on_cost, on_step)
        model = Model(w=w, b=b, image_shape=train_set.x.shape[1:], scaler=scaler, classes=train_set.classes,
                      threshold=config.evaluate.threshold, fit=config.data.fit, resample=config.data.resample)
        write_text(run_dir / "config.yaml", dump_config(config))
        save_model(run_dir / "model.npz", model)
        every = config.train.print_every
        write_text(run_dir / "costs.csv",
                   "iteration,cost\n" + "".join(f"{k * every},{c!r}\n" for k, c in enumerate(costs)))
        metrics = evaluate(model, train_set, test_set, run_dir, config.evaluate.enlarge)
        write_run_report(run_dir, (train_set, test_set), config)
        write_run_json(run_dir, provenance(config, overrides, config_file, started, time.perf_counter() - clock))
    return run_dir, model, metrics


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
