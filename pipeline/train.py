"""The train stage: data -> features -> gradient descent -> a run folder with model, costs, metrics and report."""
import contextlib
import time
from pathlib import Path

from pipeline import data
from pipeline.artifacts import Model, new_run_dir, save_model
from pipeline.config import dump_config
from pipeline.evaluate import evaluate
from pipeline.features import fit_scaler, flatten
from pipeline.files import write_text
from pipeline.model import initialize_with_zeros, optimize
from pipeline.report import write_run_report
from pipeline.provenance import provenance, write_run_json


def fit(X, Y, train_config, on_cost=None, on_step=None):
    """Gradient descent from zeros on X (n_x, m), Y (1, m). Returns w (n_x, 1), b and the recorded costs."""
    w, b = initialize_with_zeros(X.shape[0])
    params, _, costs = optimize(w, b, X, Y, train_config.num_iterations, train_config.learning_rate,
                                train_config.print_every, on_cost=on_cost, on_step=on_step)
    return params["w"], params["b"], costs


def load_data(config, **prepare_options):
    """The (train, test) Datasets the config names: the course files, or a folder dataset prepared first
    (only when its sources or settings changed; prepare_options go to pipeline.prepare.prepare)."""
    if config.data.source == "course":
        return data.load_course(Path(config.data.dir))
    from pipeline.prepare import prepare, summary

    folder, report, built = prepare(config, **prepare_options)
    for line in summary(folder, report) if built else ():
        prepare_options.get("log", lambda message: None)(line)
    return data.load_split(folder / "train.h5", "train"), data.load_split(folder / "test.h5", "test")


def train(config, train_set, test_set, name, run_dir=None, on_cost=None, on_step=None, overrides=(),
          config_file=None):
    """Train on train_set as the config says and write the run folder. Returns (run_dir, model, metrics).

    The run folder is claimed before training (so a clash is reported at once) and stays empty until
    training has succeeded; a failed run removes it again. run.json (provenance, with the overrides and
    config_file it is given) is written last, so a folder holding it is a finished run.
    """
    started, clock = time.time(), time.perf_counter()
    run_dir = new_run_dir(name, run_dir)
    with _removed_if_empty_on_error(run_dir):
        X = flatten(train_set.x)  # (n_x, m)
        scaler = fit_scaler(config.features.scaling, X)
        w, b, costs = fit(scaler.transform(X), train_set.y, config.train, on_cost, on_step)
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
def _removed_if_empty_on_error(folder):
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when nothing was written
        raise
