"""Run folders and the model file: everything a run writes, described well enough to be reused alone."""
import datetime
import fcntl
import io
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import PipelineError, runfiles
from pipeline.config import MAX_IMAGE_SIZE, load_config
from pipeline.features import SCALINGS, Scaler, features
from pipeline.files import write_bytes
from pipeline.images import FITS, RESAMPLES
from pipeline.model import sigmoid
from pipeline.names import check_class_names, printable, quote

RUNS_ROOT = Path("runs")


@dataclass(frozen=True)
class Model:
    """A trained neuron and what it needs to turn images into features the way training did.

    w is (n_x, 1), b a float, image_shape (h, w, 3) with n_x = h*w*3, classes (name of 0, name of 1).
    """

    w: np.ndarray
    b: float
    image_shape: tuple
    scaler: Scaler
    classes: tuple
    threshold: float
    fit: str = "squash"
    resample: str = "bilinear"

    def logits(self, x, chunk_size=128):
        """Images (m, h, w, 3) uint8 -> Z = w.T X + b, of shape (1, m).

        x may be an h5py Dataset; it is read chunk_size images at a time, so memory stays bounded (two float64
        chunks of features are alive at once: 25 MiB for 64x64 images).
        """
        chunks = (features(x[j:j + chunk_size], self.scaler) for j in range(0, x.shape[0], chunk_size))
        return np.concatenate([self.w.T @ X + self.b for X in chunks], axis=1)  # (1, k) pieces -> (1, m)

    def predict_proba(self, x):
        """Images (m, h, w, 3) uint8 -> probabilities of class 1, of shape (1, m)."""
        return sigmoid(self.logits(x))


def save_model(path, model):
    """Write model.npz; the same model always gives the same bytes."""
    arrays = {"w": model.w, "b": np.float64(model.b), "image_shape": np.array(model.image_shape, dtype=np.int64),
              "scaling": np.str_(model.scaler.kind), "mean": model.scaler.mean, "std": model.scaler.std,
              "classes": np.array(model.classes, dtype=str), "threshold": np.float64(model.threshold),
              "fit": np.str_(model.fit), "resample": np.str_(model.resample)}
    buf = io.BytesIO()
    # what np.savez writes, but np.savez stamps each entry with the clock: a fixed stamp makes runs repeatable
    with zipfile.ZipFile(buf, "w") as npz:
        for name, value in arrays.items():
            with npz.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                          force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    write_bytes(path, buf.getvalue())


MODEL_KEYS = ("w", "b", "image_shape", "scaling", "mean", "std", "classes", "threshold", "fit", "resample")
# bytes one array of a model may hold: w, mean and std of the largest images (MAX_IMAGE_SIZE) in float64
MEMBER_MAX_BYTES = 8 * 3 * MAX_IMAGE_SIZE ** 2
# zip members in a model file: its ten arrays; a model with thousands of entries is not one of ours
MAX_MEMBERS = 64


def _check_members(path):
    """Refuse an npz whose arrays would be large, before anything is decompressed: each member's declared
    size in the zip directory and the shape and dtype in its .npy header (the first bytes of the member)."""
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise PipelineError(f"{path}: not a model of this pipeline: {len(infos)} members")
        for info in infos:
            key = info.filename.removesuffix(".npy")
            if key not in MODEL_KEYS:
                continue  # never read
            header = 1024  # a .npy header is at most a few hundred bytes
            if info.file_size > MEMBER_MAX_BYTES + header:
                raise PipelineError(f"{path}: {key} declares {info.file_size} bytes, over the limit of "
                                    f"{MEMBER_MAX_BYTES} bytes for an array of a model")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            if dtype.hasobject:
                raise PipelineError(f"{path}: refused: it holds pickled Python objects, which are never loaded "
                                    "(allow_pickle=False)")
            if math.prod(shape) * dtype.itemsize > MEMBER_MAX_BYTES:
                raise PipelineError(f"{path}: {key} declares shape {quote(shape)} of {dtype}, over the limit of "
                                    f"{MEMBER_MAX_BYTES} bytes for an array of a model")


def load_model(path):
    """Load and check a model.npz written by save_model; never unpickles anything."""
    path = Path(path)
    if path.is_dir():  # a run folder's model: a file of that folder (pipeline/runfiles.py)
        path = path / "model.npz"
        try:
            runfiles.check(path)
        except runfiles.Missing:
            raise PipelineError(f"{path}: no such model file") from None
    if not path.exists():
        raise PipelineError(f"{path}: no such model file")
    if not path.is_file():  # a pipe would block, a device never end
        raise PipelineError(f"{path}: not a regular file")
    if not zipfile.is_zipfile(path):  # else np.load would take any other bytes for a pickle
        raise PipelineError(f"{path}: not a model file (.npz)")
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in MODEL_KEYS if k not in npz.files]
            if missing:
                raise PipelineError(f"{path}: not a model of this pipeline: missing {', '.join(missing)}")
            a = {k: npz[k] for k in MODEL_KEYS}
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):  # unknown compression,
        raise PipelineError(f"{path}: not a model file (.npz)") from None  # encrypted members, ...
    except ValueError as e:  # object arrays (pickles) are refused by allow_pickle=False; a bad .npy header
        if "pickle" in str(e):
            raise PipelineError(f"{path}: refused: it holds pickled Python objects, which are never loaded "
                                "(allow_pickle=False)") from None
        raise PipelineError(f"{path}: refused: {e}") from None
    for key in ("w", "b", "image_shape", "mean", "std", "threshold"):
        if a[key].dtype.kind not in "fiu":
            raise PipelineError(f"{path}: {key} must hold numbers, got {a[key].dtype}")
    for key in ("b", "threshold"):
        if a[key].shape != ():
            raise PipelineError(f"{path}: {key} must be a single number, got shape {a[key].shape}")
    shape = tuple(int(s) for s in a["image_shape"].reshape(-1))
    n_x = int(np.prod(shape)) if shape else 0
    kind = str(a["scaling"])
    if len(shape) != 3 or shape[2] != 3 or min(shape) < 1 or max(shape) > MAX_IMAGE_SIZE:
        raise PipelineError(f"{path}: image_shape must be (h, w, 3) with h and w from 1 to {MAX_IMAGE_SIZE}, "
                            f"got {quote(shape)}")
    if a["w"].shape != (n_x, 1):
        raise PipelineError(f"{path}: w must have shape ({n_x}, 1) for images of {shape}, got {a['w'].shape}")
    if kind not in SCALINGS:
        raise PipelineError(f"{path}: unknown scaling '{kind}'")
    want = (n_x, 1) if kind == "standardize" else (0, 1)
    if a["mean"].shape != want or a["std"].shape != want:
        raise PipelineError(f"{path}: mean and std must have shape {want} for scaling '{kind}'")
    for key, known in (("fit", FITS), ("resample", RESAMPLES)):
        if str(a[key]) not in known:
            raise PipelineError(f"{path}: unknown {key} '{a[key]}' (expected one of {', '.join(known)})")
    if a["classes"].shape != (2,) or a["classes"].dtype.kind != "U":  # bytes would print as b'cat'
        raise PipelineError(f"{path}: classes must hold 2 names as text, got {a['classes'].dtype} of shape "
                            f"{a['classes'].shape}")
    classes = check_class_names([str(c) for c in a["classes"]], f"{path}: classes")
    _check_numbers(path, kind, a)
    return Model(w=a["w"].astype(np.float64), b=float(a["b"]), image_shape=shape,
                 scaler=Scaler(kind, a["mean"], a["std"]), classes=classes,
                 threshold=float(a["threshold"]), fit=str(a["fit"]), resample=str(a["resample"]))


def _check_numbers(path, kind, a):
    """Refuse non-finite numbers, a zero or negative std, a threshold outside (0, 1) and weights so large
    that w.T x + b could overflow for some image: then every probability the model gives is a number."""
    for key in ("w", "b", "mean", "std", "threshold"):
        if not np.isfinite(a[key]).all():
            raise PipelineError(f"{path}: {key} holds NaN or infinite values")
    if kind == "standardize" and not (a["std"] > 0).all():
        raise PipelineError(f"{path}: std holds zero or negative values (features would be divided by them)")
    if not 0 < a["threshold"] < 1:
        raise PipelineError(f"{path}: threshold must be between 0 and 1 (exclusive), got {float(a['threshold'])}")
    # the largest |feature| any image can give: 1 for pixel/255, else the farther of 0 and 255 from the mean
    x_max = np.maximum(np.abs(a["mean"]), np.abs(255 - a["mean"])) / a["std"] if kind == "standardize" else 1.0
    with np.errstate(all="ignore"):
        bound = np.sum(np.abs(a["w"].astype(np.float64)) * x_max) + abs(float(a["b"]))
    if not bound < 1e300:
        raise PipelineError(f"{path}: w and b are so large that the model's output overflows")


def new_run_dir(name, run_dir=None, option="--run-dir"):
    """Claim and return the run folder: run_dir if given (it must be new or empty), else runs/<name>-<time>.
    option names the command-line option that gave run_dir, for the error message.

    The claim is exclusive: of two processes aimed at one folder exactly one gets it (see claim_dir).
    """
    for text, what in ((name, "the run's name (its config file's name)"), (run_dir and Path(run_dir).name, option)):
        if text and not str(text).isprintable():  # a newline in a folder's name splits every line that shows it
            raise PipelineError(f"{printable(text)}: refused: {what} holds control characters")
    if run_dir is not None:
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise PipelineError(f"{run_dir}: already exists and is not an empty folder; "
                                f"choose another {option} or remove it")
        run_dir.mkdir(parents=True, exist_ok=True)
        claim_dir(run_dir, option)
        if any(run_dir.iterdir()):  # looked at only once the claim is ours: no one else can fill it now
            raise PipelineError(f"{run_dir}: already exists and is not an empty folder; "
                                f"choose another {option} or remove it")
        return run_dir
    stem = RUNS_ROOT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        candidate = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            candidate.mkdir(parents=True)
            return claim_dir(candidate, option)
        except (FileExistsError, PipelineError):  # made, or claimed through --run-dir, by another run
            continue
    raise PipelineError(f"{stem}: too many runs with this name in the same second")


_CLAIMS = {}  # folder -> the open descriptor holding its lock, for as long as this process runs


def claim_dir(folder, option="--run-dir"):
    """Lock the existing folder for this process (flock: released when the process ends, however it ends);
    refuse it when another process holds it. Returns folder."""
    for held in [p for p in _CLAIMS if not p.is_dir()]:  # renamed or removed since: its claim is over
        os.close(_CLAIMS.pop(held))
    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        taken = os.fstat(fd).st_ino != os.stat(folder).st_ino  # removed and made again while we locked
    except BlockingIOError:
        taken = True
    except OSError:  # a file system without locks (or the folder just went): used unlocked, as before
        os.close(fd)
        return folder
    if taken:
        os.close(fd)
        raise PipelineError(f"{folder}: in use by another run that is still going; "
                            f"wait for it to end or choose another {option}")
    _CLAIMS[folder] = fd
    return folder


def latest_run(root=RUNS_ROOT):
    """The finished run folder under root (one with model.npz and run.json, which train writes last) that
    finished last."""
    done = [p.parent for p in Path(root).glob("*/run.json") if (p.parent / "model.npz").is_file()]
    if not done:
        raise PipelineError(f"{root}: no run with a model.npz found; train one first (the train command, or make train)")
    return max(done, key=lambda run: (run / "run.json").stat().st_mtime)


def trained_at(run_dir):
    """When the run in run_dir finished, in UTC, as `2026-11-29 05:30`: from its run.json, else its model's
    modification time."""
    record = read_record(run_dir)
    try:
        start = datetime.datetime.fromisoformat(record["started"])
        end = start + datetime.timedelta(seconds=float(record["duration_s"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        end = datetime.datetime.fromtimestamp((Path(run_dir) / "model.npz").stat().st_mtime, datetime.timezone.utc)
    return end.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def read_metrics(path):
    """The metrics.json that evaluate writes, as a dict."""
    metrics = read_json(path, "run `python -m pipeline evaluate` to write it")
    keys = ("accuracy", "log_loss", "precision", "recall", "f1", "count", "confusion")
    if not all(isinstance(metrics.get(s), dict) and all(k in metrics[s] for k in keys) for s in ("train", "test")):
        raise PipelineError(f"{path}: expected train and test metrics, each with {', '.join(keys)}")
    for split in ("train", "validation", "test"):  # what the report formats: numbers, a 2x2 matrix of counts
        values = metrics.get(split, {})  # roc_auc and average_precision are null for a split of one class
        if not isinstance(values, dict) or not all(_number(values.get(k, 0)) for k in keys[:-1]) or \
                not all(_number(v) or v is None for k, v in values.items() if k != "confusion") or \
                "confusion" in values and not _confusion(values["confusion"]):
            raise PipelineError(f"{path}: {split} metrics must be numbers and a 2x2 confusion matrix of counts")
    return metrics


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _confusion(value):
    return isinstance(value, list) and len(value) == 2 and all(
        isinstance(row, list) and len(row) == 2 and all(isinstance(n, int) and n >= 0 for n in row) for row in value)


COST_HEADERS = (["iteration", "cost"], ["iteration", "cost", "validation_cost"])


def read_costs(path, positive=False, validation=False):
    """(iterations, costs) from a costs.csv of `iteration,cost` rows (or `iteration,cost,validation_cost`, as
    a run with a validation split writes it), refusing anything else. validation: (iterations, costs,
    validation costs or None)."""
    rows = runfiles.read_csv(path)
    if not rows or rows[0] not in COST_HEADERS or len(rows) < 2:
        raise PipelineError(f"{path}: expected a header 'iteration,cost' and at least one row "
                            "(or the header 'iteration,cost,validation_cost')")
    width = len(rows[0])
    try:
        if any(len(r) != width for r in rows):
            raise ValueError
        iterations = [int(r[0]) for r in rows[1:]]
        columns = [[float(r[k]) for r in rows[1:]] for k in range(1, width)]
    except ValueError:
        raise PipelineError(f"{path}: every row must be '{','.join(rows[0])}' with numbers") from None
    if not np.all(np.isfinite(columns)) or (positive and np.min(columns) <= 0):
        raise PipelineError(f"{path}: costs must be finite{' and positive for report.cost_scale log' * positive}")
    if validation:
        return iterations, columns[0], columns[1] if width == 3 else None
    return iterations, columns[0]


def read_run(run_dir):
    """A finished run folder as (config, metrics, record): metrics flat (final_cost, train_accuracy,
    validation_log_loss, test_log_loss, ...: every number of metrics.json, and the training cost of the
    weights the run kept: early stopping's iteration, else the last recorded), record its run.json ({} if none).
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    result = read_metrics(run_dir / "metrics.json")
    record = read_record(run_dir)
    training = record.get("training") if isinstance(record.get("training"), dict) else {}
    iterations, costs = read_costs(run_dir / "costs.csv")
    kept = training.get("best_iteration") if training.get("early_stopping") else None
    metrics = {"final_cost": costs[iterations.index(kept)] if kept in iterations else costs[-1]}
    for split in ("train", "validation", "test"):
        for key, value in result.get(split, {}).items():
            if isinstance(value, (int, float)) and key != "count":
                metrics[f"{split}_{key}"] = value
    return config, metrics, record


def run_config(run_dir, overrides=()):
    """The config.yaml of a run folder, a file of that folder (the config loader bounds its size and type)."""
    path = Path(run_dir) / "config.yaml"
    runfiles.check(path)
    return load_config(path, overrides)


RECORD_TYPES = {"versions": dict, "data_sha256": dict, "training": dict, "overrides": list, "started": str,
                "duration_s": (int, float), "config_file": (str, type(None)), "git_commit": (str, type(None))}


def read_record(run_dir):
    """The run.json of a run folder ({} if it has none), its keys of the types provenance.py writes."""
    path = Path(run_dir) / "run.json"
    if not os.path.lexists(path):
        return {}
    record = read_json(path)
    for key, kind in RECORD_TYPES.items():
        if key in record and not isinstance(record[key], kind) or kind is dict and \
                not all(_plain(v) for v in record.get(key, {}).values()):
            raise PipelineError(f"{path}: {key} must be {_KINDS[key]}, got {quote(record[key])}")
    duration = record.get("duration_s", 0)  # formatted as a float: a 400-digit integer would overflow
    if not (isinstance(duration, float) and 0 <= duration < 1e9 or isinstance(duration, int) and 0 <= duration < 10**9):
        raise PipelineError(f"{path}: duration_s must be a number of seconds from 0 to 1e9, got {quote(duration)}")
    if not _number(record.get("training", {}).get("learning_rate", 0) or 0):  # the report formats it (lbfgs: null)
        raise PipelineError(f"{path}: training.learning_rate must be a number or null, "
                            f"got {quote(record['training']['learning_rate'])}")
    return record


def _plain(value, depth=2):
    """A plain JSON value, or (training's l2_path) a list of objects of plain values."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return True
    if depth and isinstance(value, list):
        return all(_plain(v, depth - 1) for v in value)
    return depth and isinstance(value, dict) and all(_plain(v, depth - 1) for v in value.values())


_KINDS = {"versions": "an object of plain values", "data_sha256": "an object of plain values",
          "training": "an object of plain values", "overrides": "a list", "started": "text",
          "duration_s": "a number", "config_file": "text or null", "git_commit": "text or null"}


def read_json(path, hint="is {folder} a finished run folder?"):
    """The JSON object in the file at path; a missing file is refused with the hint ({folder}: its folder)."""
    path = Path(path)
    try:
        value = runfiles.read_json(path)
    except runfiles.Missing:
        raise PipelineError(f"{path}: no such file; {hint.format(folder=path.parent)}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
