"""The YAML config: one section per stage, loaded into dataclasses that refuse what they don't know.

Every key has a default (the lesson's run), a type and a range; `--set section.key=value` overrides a key
with a YAML scalar (a text key: the text, when YAML reads it as something else). Errors name the file and the
dotted key.
"""
import dataclasses
import itertools
import math
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import PipelineError
from pipeline.features import SCALINGS
from pipeline.images import FITS, RESAMPLES
from pipeline.names import QUOTE_MAX, printable, quote
from pipeline.solvers import DTYPES, SOLVERS


RANK_METRICS = ("log_loss", "accuracy", "f1", "roc_auc", "average_precision")  # log_loss: lower is better


def _positive(v):
    return None if v > 0 else "must be > 0"


def _at_least(n):
    return lambda v: None if v >= n else f"must be >= {n}"


def open_unit(v):
    return None if 0 < v < 1 else "must be between 0 and 1 (exclusive)"


def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _fraction(v):
    return None if 0 <= v < 1 else "must be >= 0 and < 1"


def _folder_name(v):
    if v == "" or (v not in (".", "..") and "/" not in v and "\\" not in v and v.isprintable()):
        return None
    return "must be a plain folder name" + " (no control characters)" * (not v.isprintable())


def _names(v):
    names = [n.strip() for n in v.split(",")]
    if not all(names):
        return "must be folder names separated by commas"
    if any(_folder_name(n) or not n.isprintable() for n in names):
        return "must be plain folder names inside data.root (no /, \\, .. or control characters)"
    return None


def _auto_or_bool(v):
    return None if v == "auto" or v is True or v is False else "must be auto, true or false"


def _key(default, check=None, auto=False):
    """A config field; auto: the string 'auto' is accepted besides the field's type (computed from the data)."""
    return field(default=default, metadata={"check": check, "auto": auto})


@dataclass(frozen=True)
class DataConfig:
    source: str = _key("course", _one_of("course", "folder"))
    dir: str = _key("data/raw")
    fit: str = _key("squash", _one_of(*FITS))
    resample: str = _key("bilinear", _one_of(*RESAMPLES))
    # source: folder (pipeline/prepare.py)
    root: str = _key("")
    test_root: str = _key("")
    positive: str = _key("cat", _names)
    negative: str = _key("non-cat", _names)
    test_fraction: float = _key(0.2, open_unit)
    val_fraction: float = _key(0.0, _fraction)
    split_seed: int = _key(0, _at_least(0))
    image_size: int = _key(64, _at_least(1))
    min_size: int = _key(0, _at_least(0))
    name: str = _key("", _folder_name)


@dataclass(frozen=True)
class FeaturesConfig:
    scaling: str = _key("divide255", _one_of(*SCALINGS))


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = _key(0.005, _positive, auto=True)  # or auto: 1.5/L (docs/training.md)
    num_iterations: int = _key(2000, _at_least(1))
    print_every: int = _key(100, _at_least(1))
    seed: int = _key(0, _at_least(0))
    solver: str = _key("auto", _one_of(*SOLVERS))
    dtype: str = _key("float64", _one_of(*DTYPES))
    l2: float = _key(0.0, _at_least(0), auto=True)  # or auto: chosen on validation (lbfgs, pipeline/l2path.py)
    tol: float = _key(1e-6, _positive)  # lbfgs stops when the gradient's largest component is at most this
    streaming: object = _key("auto", _auto_or_bool)
    chunk_size: int = _key(512, _at_least(1))
    stability_check: bool = _key(False)  # estimate 2/L before training and warn when learning_rate is above it
    early_stopping: bool = _key(False)  # keep the weights of the lowest validation cost
    patience: int = _key(10, _at_least(1))  # recorded iterations without a better validation cost before stopping
    class_weight: str = _key("none", _one_of("none", "balanced"))
    memory_budget: int = _key(512, _at_least(0))
    engine: str = _key("local", _one_of("local", "dask"))
    scheduler: str = _key("")


@dataclass(frozen=True)
class EvaluateConfig:
    threshold: float = _key(0.5, open_unit, auto=True)  # or auto: chosen on the validation split
    enlarge: int = _key(4, _at_least(1))
    threshold_metric: str = _key("accuracy", _one_of("accuracy", "f1", "balanced_accuracy"))
    rank_by: str = _key("log_loss", _one_of(*RANK_METRICS))  # the validation metric sweeps rank their runs by


@dataclass(frozen=True)
class AuditConfig:
    near_distance: float = _key(0.02, _fraction)


@dataclass(frozen=True)
class ReportConfig:
    cost_scale: str = _key("linear", _one_of("linear", "log"))


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def flat(self):
        """{"section.key": value} for every key, in the config's order."""
        return {f"{s}.{k}": v for s, keys in self.to_dict().items() for k, v in keys.items()}


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
ALL_KEYS = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


PACKAGED = Path(__file__).resolve().parent / "configs"  # the repo's configs/, shipped inside the package


def find_config(name):
    """The config file that name means: a path as given, or a bare name (`default`, `lr_sweep`) of a config
    shipped with the package, so that the commands work from any folder."""
    path = Path(name)
    if path.is_file() or not _bare(name):
        return path
    packaged = PACKAGED / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    raise PipelineError(f"{name}: config file not found{_similar_config(name)} (a path, or one of the packaged "
                        f"configs: {_packaged_names()})")


def config_name(path):
    """How a run's record names the config file at path: `packaged:NAME.yaml` for a config shipped with the
    package (its path inside an installed package says nothing to a reader), else the path as given."""
    path = Path(path)
    return f"packaged:{path.name}" if path.parent == PACKAGED else str(path)


def load_config(path, overrides=()):
    """Read the YAML file at path (and the base it extends), apply `section.key=value` overrides, validate.

    A config with a `sweep:` block describes many runs and is refused here: `python -m pipeline sweep` runs it.
    """
    config, sweep = load_experiment(path, overrides)
    if sweep:
        raise PipelineError(f"{path}: has a sweep: block; run it with `python -m pipeline sweep --config {path}`")
    return config


def load_experiment(path, overrides=()):
    """(Config, sweep) from the YAML file at path; sweep is its raw `sweep:` block ({} without one).

    `base: other.yaml` (relative to the file, else a packaged config's name) names a config to start from:
    its sections are merged key by key, this file's values winning. Chains are followed, cycles refused.
    """
    raw = _read_with_base(find_config(path))
    sweep = raw.pop("sweep", None) or {}  # checked by pipeline.sweep.grid
    for override in overrides:
        _apply_override(raw, override)
    return from_dict(raw, str(path)), sweep


def _read_with_base(path, chain=()):
    raw = _read_yaml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base or len(base) > 4096 or "\0" in base:
        raise PipelineError(f"{path}: base must be the path of another config file, got {quote(base)}")
    base_path = _base_path(path, base)
    chain = chain + (path,)
    if any(base_path.resolve() == p.resolve() for p in chain):
        raise PipelineError(f"{path}: base {base} makes a cycle: {' -> '.join(map(str, chain + (base_path,)))}")
    if not base_path.exists():
        packaged = f", nor a packaged config ({_packaged_names()})" if _bare(base) else ""
        raise PipelineError(f"{path}: base {base}: no such config file ({base_path}){packaged}")
    merged = _read_with_base(base_path, chain)
    from_dict({k: v for k, v in merged.items() if k != "sweep"}, str(base_path))  # name the file at fault
    for key, value in raw.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both else value
    return merged


def _base_path(path, base):
    """The file that `base: base` in the config file at path names: a path relative to that file, else a
    packaged config's bare name (as --config takes it: `base: folder_example`)."""
    relative, packaged = path.parent / base, PACKAGED / f"{base}.yaml"
    return packaged if _bare(base) and not relative.is_file() and packaged.is_file() else relative


def _bare(name):
    """Whether name can be a packaged config's name: no folder, no .yaml."""
    return Path(name).suffix not in (".yaml", ".yml") and len(Path(name).parts) == 1


def _similar_config(name, shown=200):
    """"; did you mean X?" when name (as typed) is close to a config file beside it or, for a bare name, to a
    packaged config's name; else ""."""
    import difflib  # only for a config not found

    path = Path(name)
    try:  # the first few YAML files: a folder of thousands is not read whole for a hint
        beside = sorted(itertools.islice((p.name for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")),
                                         shown))
    except OSError:  # no such folder: nothing beside
        beside = []
    candidates = [p if path.parent == Path(".") else str(path.parent / p) for p in beside]
    if _bare(name):
        candidates += sorted(p.stem for p in PACKAGED.glob("*.yaml"))
    match = difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.8)
    return f"; did you mean {match[0]}?" if match else ""


def _packaged_names():
    return ", ".join(sorted(p.stem for p in PACKAGED.glob("*.yaml")))


CONFIG_MAX_BYTES = 1 << 20  # a config is a page of text: anything bigger is a mistake or an attack
YAML_MAX_DEPTH = 20  # a config nests 3 levels (section, key, a sweep's list)


class _Refused(yaml.YAMLError):
    def __init__(self, problem, mark):
        super().__init__(f"{problem} at line {mark.line + 1}")


class _BeyondBounds(_Refused):
    """An integer longer or larger than any config value."""


class _ConfigLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing aliases (a 600-byte alias bomb expands to gigabytes), duplicate
    keys (YAML lets the last one win: a repeated train: section would silently drop the first) and tags other
    than YAML's standard ones (!!python/object, !custom) in words that say so."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused("aliases (*name) are not allowed in a config", self.peek_event().start_mark)
        if self.depth >= YAML_MAX_DEPTH:  # the composer recurses: [[[[...]]]] would end in a RecursionError
            raise _Refused(f"nested deeper than {YAML_MAX_DEPTH} levels", self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in seen:
                raise _Refused(f"duplicate key {quote(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        """An integer, refused before conversion when longer than any config value could be: Python's int()
        refuses over 4300 digits with a traceback, and a long hex integer prints as one."""
        digits = node.value.lstrip("+-").replace("_", "")
        if len(digits) > INT_DIGITS_MAX:
            raise _BeyondBounds(f"the integer {quote(node.value, 20)} ({len(digits)} characters) is beyond any "
                                f"config value (at most {INT_DIGITS_MAX} characters)", node.start_mark)
        value = super().construct_yaml_int(node)
        if abs(value) > INT_MAX:
            raise _BeyondBounds(f"the integer {quote(node.value, 20)} is beyond any config value "
                                f"(at most {INT_MAX})", node.start_mark)
        return value

    def construct_undefined(self, node):  # a tag safe_load has no constructor for, e.g. !!python/object
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _Refused(f"the tag {quote(tag)} is not allowed in a config (plain values only)", node.start_mark)


_ConfigLoader.add_constructor(None, _ConfigLoader.construct_undefined)
_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)


def yaml_value(text):
    """A YAML document read as configs are (no aliases, no duplicate keys); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_ConfigLoader)


def _read_text(path):
    """The text of the config file at path: a regular file of at most CONFIG_MAX_BYTES, in UTF-8."""
    try:
        info = path.stat()  # never open a pipe (it would block) or a device (/dev/zero never ends)
        if not stat.S_ISREG(info.st_mode):
            raise PipelineError(f"{path}: not a regular file; a config must be a file, not a folder, pipe or device")
        with open(path, "rb") as f:
            data = f.read(CONFIG_MAX_BYTES + 1)  # +1: a file that grew since stat is still caught
        if len(data) > CONFIG_MAX_BYTES:
            raise PipelineError(f"{path}: over the limit of {CONFIG_MAX_BYTES} bytes for a config file")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: config file not found{_similar_config(path)}") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: cannot read config: not UTF-8 text") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read config: {e.strerror or e}") from None


def _read_yaml(path):
    try:
        raw = yaml_value(_read_text(path))
    except _Refused as e:
        raise PipelineError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise PipelineError(f"{path}: not valid YAML{line}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw


def from_dict(raw, where="config"):
    """Build a validated Config from a dict of sections; `where` names the source in error messages."""
    if raw and not any(name in SECTIONS or _did_you_mean(str(name), SECTIONS) for name in raw):
        # some other file (base: ~/.netrc): say so without echoing its contents
        raise PipelineError(f"{where}: not a config file: none of its top-level keys is a section "
                            f"({', '.join(SECTIONS)})")
    sections = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            raise PipelineError(f"{where}: unknown section {quote(str(name))}{_did_you_mean(str(name), SECTIONS)}")
        if not isinstance(value, dict):
            raise PipelineError(f"{where}: section '{name}' must be a mapping of keys, got {quote(value)}")
        sections[name] = _section(SECTIONS[name], name, value, where)
    return Config(**sections)


def _section(cls, name, values, where):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    for key, value in values.items():
        dotted = f"{name}.{key}"
        if key not in fields:
            raise PipelineError(f"{where}: unknown key {quote(str(dotted))}{_did_you_mean(str(dotted), ALL_KEYS)}")
        checked[key] = _checked(fields[key], dotted, value, where)
    return cls(**checked)


def _checked(f, dotted, value, where):
    """value for the dataclass field f (named dotted), as its type, or a PipelineError saying what is wrong."""
    if f.metadata["auto"] and value == "auto":
        return value
    if f.type is float and isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; a learning rate is often written so
    problem = _type_problem(value, f.type)
    if problem and f.metadata["auto"]:
        problem = problem.replace("must be", "must be auto or", 1)
    if problem is None and f.metadata["check"]:
        problem = f.metadata["check"](value)
    if problem is None and dotted in UPPER_BOUNDS and value > UPPER_BOUNDS[dotted]:
        problem = f"must be <= {UPPER_BOUNDS[dotted]}"
    if problem:
        raise PipelineError(f"{where}: {dotted} {problem}, got {quote(value)}")
    return float(value) if f.type is float else value


INT_MAX = 2 ** 63 - 1  # no config integer is larger (a seed, a count); longer ones are refused unread
INT_DIGITS_MAX = 24  # characters of an integer's text, past which it is refused before int() reads it
MAX_IMAGE_SIZE = 1024  # pixels on a side: n_x = 3 * 1024**2 features already
# what a small config could otherwise inflate in memory: image buffers, enlarged pictures, chunks
UPPER_BOUNDS = {"data.image_size": MAX_IMAGE_SIZE, "evaluate.enlarge": 16, "train.chunk_size": 1_000_000}
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_problem(value, typ):
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
    elif not isinstance(value, typ):
        return f"must be a {typ.__name__}"
    return None


def _apply_override(raw, override):
    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    # errors name the --set, with at most a short prefix of its value, so that the reason always shows
    short = override if len(override) <= 2 * QUOTE_MAX else override[:2 * QUOTE_MAX] + "..."
    where = f"--set {printable(short)}"
    if not sep or not dot or not name:
        raise PipelineError(f"{where}: expected section.key=value, e.g. train.learning_rate=0.01")
    check_key(key.strip(), where)
    try:
        value = yaml_value(text)
    except _BeyondBounds as e:  # an integer too long to convert: no text type would take it either
        raise PipelineError(f"{where}: {str(e).removesuffix(' at line 1')}") from None
    except yaml.YAMLError:
        value = text  # not a YAML scalar: keep the text, type checking will judge it
    field_ = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    if field_.type is str and not isinstance(value, str):
        value = text.strip()  # a str key takes the text: data.name=2024 is the name '2024', a: b is no mapping
    if not isinstance(raw.get(section), dict):
        raw[section] = {}
    raw[section][name] = _checked(field_, key.strip(), value, where)


def check_key(key, where):
    """Refuse a dotted key that is not a config key, suggesting the closest one; return it."""
    if key not in ALL_KEYS:
        raise PipelineError(f"{where}: unknown key {quote(str(key))}{_did_you_mean(str(key), ALL_KEYS)}")
    return key


def with_values(config, values, where):
    """config with the dotted keys of values ({"train.learning_rate": 0.01, ...}) replaced, validated."""
    raw = config.to_dict()
    for key, value in values.items():
        section, name = check_key(key, where).split(".")
        raw[section][name] = value
    return from_dict(raw, where)


def _did_you_mean(word, known):
    import difflib  # only for a misspelt name: its import is a millisecond of every command

    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def dump_config(config):
    """The resolved config as YAML text: loading it gives the same Config."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
