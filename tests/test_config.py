"""The config refuses what it does not know, naming the file and the key."""
import pytest

from pipeline import PipelineError
from pipeline.config import Config, dump_config, from_dict, load_config
from tests.conftest import ROOT, run_cli

DEFAULT = "configs/default.yaml"


def test_default_config_is_the_lessons_run():
    config = load_config(ROOT / DEFAULT)
    assert config == Config()
    assert (config.train.learning_rate, config.train.num_iterations, config.train.print_every) == (0.005, 2000, 100)
    assert config.features.scaling == "divide255"


@pytest.mark.parametrize("name", [DEFAULT, "configs/lr_sweep.yaml"])
def test_every_key_of_the_default_config_has_a_comment(name):
    for line in (ROOT / name).read_text().splitlines():
        if line.startswith("  ") and ":" in line:
            assert "#" in line, line


def test_resolved_config_round_trips(tmp_path):
    config = load_config_text(tmp_path, "train:\n  learning_rate: 0.01\n")
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def load_config_text(tmp_path, text, overrides=()):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path, overrides)


def test_override_changes_exactly_the_named_value(tmp_path):
    config = load_config_text(tmp_path, "", ["train.learning_rate=0.01", "evaluate.threshold=0.7"])
    assert config.train.learning_rate == 0.01 and config.evaluate.threshold == 0.7
    assert config.train == Config().train.__class__(learning_rate=0.01)


def test_int_given_for_a_float_is_accepted_as_float(tmp_path):
    config = load_config_text(tmp_path, "train:\n  learning_rate: 1\n")
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)


@pytest.mark.parametrize("text, message", [
    ("train:\n  learning_rat: 0.1\n", r"c.yaml: unknown key 'train.learning_rat' \(did you mean 'train.learning_rate'\?\)"),
    ("trian:\n  learning_rate: 0.1\n", r"unknown section 'trian' \(did you mean 'train'\?\)"),
    ("train:\n  learning_rate: fast\n", r"train.learning_rate must be auto or a number, got 'fast'"),
    ("train:\n  learning_rate: .nan\n", r"train.learning_rate must be auto or a finite number"),
    ("train:\n  learning_rate: -0.1\n", r"train.learning_rate must be > 0, got -0.1"),
    ("train:\n  num_iterations: 2.5\n", r"train.num_iterations must be a whole number, got 2.5"),
    ("train:\n  num_iterations: 0\n", r"train.num_iterations must be >= 1, got 0"),
    ("train:\n  num_iterations: true\n", r"train.num_iterations must be a whole number, got True"),
    ("features:\n  scaling: minmax\n", r"features.scaling must be one of divide255, standardize, got 'minmax'"),
    ("train:\n  solver: fast\n", r"train.solver must be one of auto, primal, gram, lbfgs, got 'fast'"),
    ("train:\n  dtype: float16\n", r"train.dtype must be one of float64, float32, got 'float16'"),
    ("train:\n  l2: -0.1\n", r"train.l2 must be >= 0, got -0.1"),
    ("train:\n  streaming: maybe\n", r"train.streaming must be auto, true or false, got 'maybe'"),
    ("train:\n  streaming: 1\n", r"train.streaming must be auto, true or false, got 1"),
    ("train:\n  chunk_size: 0\n", r"train.chunk_size must be >= 1, got 0"),
    ("evaluate:\n  threshold: 1.0\n", r"evaluate.threshold must be between 0 and 1 \(exclusive\), got 1.0"),
    ("train: 3\n", r"section 'train' must be a mapping of keys, got 3"),
    ("- a\n- b\n", r"a config must be a mapping of sections, got list"),
    ("train:\n  learning_rate: [\n", r"c.yaml: not valid YAML at line"),
    ("train:\n  learning_rate: !!python/object/apply:os.system ['touch pwned']\n",
     r"c.yaml: the tag '!!python/object/apply:os.system' is not allowed in a config \(plain values only\) at line 2"),
    ("train:\n  solver: !custom gram\n", r"c.yaml: the tag '!custom' is not allowed in a config \(plain values only\) at line 2"),
])
def test_bad_config_is_refused_naming_the_key(tmp_path, text, message):
    with pytest.raises(PipelineError, match=message):
        load_config_text(tmp_path, text)


@pytest.mark.parametrize("override, message", [
    ("train.learnin_rate=0.1", r"--set train.learnin_rate=0.1: unknown key 'train.learnin_rate' \(did you mean 'train.learning_rate'\?\)"),
    ("learning_rate=0.1", r"expected section.key=value"),
    ("train.learning_rate", r"expected section.key=value"),
    ("train.num_iterations=lots", r"train.num_iterations must be a whole number, got 'lots'"),
])
def test_bad_override_is_refused(tmp_path, override, message):
    with pytest.raises(PipelineError, match=message):
        load_config_text(tmp_path, "", [override])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(PipelineError, match=r"nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_from_dict_refuses_unknown_keys_in_any_section():
    with pytest.raises(PipelineError, match="unknown key 'data.folder'"):
        from_dict({"data": {"folder": "x"}})


def test_base_config_is_extended_key_by_key(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  learning_rate: 0.01\n  num_iterations: 10\nevaluate:\n  enlarge: 2\n")
    config = load_config_text(tmp_path, "base: base.yaml\ntrain:\n  num_iterations: 20\n", ["evaluate.enlarge=3"])
    assert (config.train.learning_rate, config.train.num_iterations) == (0.01, 20)  # this file's value wins
    assert config.evaluate.enlarge == 3 and config.train.print_every == Config().train.print_every


def test_base_can_name_a_packaged_config_as_config_does(tmp_path):
    """A config outside the repo extends a packaged one by its bare name; a file of that name beside the
    config comes first."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "c.yaml").write_text("base: folder_example\ndata:\n  root: my-photos\n")
    packaged = load_config(ROOT / "configs" / "folder_example.yaml")
    config = load_config(work / "c.yaml")
    assert config.data.root == "my-photos" and config.train == packaged.train
    assert config.data.val_fraction == packaged.data.val_fraction == 0.2
    (work / "folder_example").write_text("train:\n  num_iterations: 7\n")
    assert load_config(work / "c.yaml").train.num_iterations == 7


def test_the_lr_sweep_config_extends_the_default_one():
    from pipeline.config import load_experiment

    config, sweep = load_experiment(ROOT / "configs" / "lr_sweep.yaml")
    assert config.train == Config().train.__class__(num_iterations=1500)
    assert sweep == {"train.learning_rate": [0.01, 0.001, 0.0001]}


@pytest.mark.parametrize("files, message", [
    ({"c.yaml": "base: c.yaml\n"}, r"c.yaml: base c.yaml makes a cycle: .*c.yaml -> .*c.yaml"),
    ({"c.yaml": "base: b.yaml\n", "b.yaml": "base: c.yaml\n"}, r"b.yaml: base c.yaml makes a cycle: .*c.yaml -> .*b.yaml -> .*c.yaml"),
    ({"c.yaml": "base: nope.yaml\n"}, r"c.yaml: base nope.yaml: no such config file \(.*nope.yaml\)$"),
    ({"c.yaml": "base: nope\n"}, r"c.yaml: base nope: no such config file \(.*nope\), nor a packaged config "
                                 r"\(default, folder_example, folder_sweep, lr_sweep\)$"),
    ({"c.yaml": "base: [a, b]\n"}, r"c.yaml: base must be the path of another config file, got \['a', 'b'\]"),
    ({"c.yaml": 'base: "a\\0b"\n'}, r"c.yaml: base must be the path of another config file, got 'a\\x00b'"),
    ({"c.yaml": "base: b.yaml\n", "b.yaml": "train:\n  rate: 1\n"}, r"b.yaml: unknown key 'train.rate'"),
])
def test_bad_base_is_refused_naming_the_file(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PipelineError, match=message):
        load_config(tmp_path / "c.yaml")


def test_scientific_notation_is_a_number_in_files_and_overrides(tmp_path):
    # YAML 1.1 reads 1e-3 (no dot) as a string; the config reads it as the number a user means
    config = load_config_text(tmp_path, "train:\n  learning_rate: 5e-3\n")
    assert config.train.learning_rate == 0.005
    assert load_config_text(tmp_path, "", ["train.learning_rate=1E-4"]).train.learning_rate == 0.0001
    with pytest.raises(PipelineError, match=r"train.num_iterations must be a whole number, got '1e3'"):
        load_config_text(tmp_path, "train:\n  num_iterations: 1e3\n")


@pytest.mark.parametrize("override, key, value", [
    ("data.name=2024", "name", "2024"),  # YAML reads a number
    ("data.positive=yes", "positive", "yes"),  # YAML 1.1 reads a bool
    ("data.negative=null", "negative", "null"),
    ("train.scheduler=garbage!!::", "scheduler", "garbage!!::"),  # YAML reads a mapping
    ("data.root=[photos]", "root", "[photos]"),  # YAML reads a list
    ("data.name= 'a b' ", "name", "a b"),  # a YAML string is still unquoted
])
def test_a_str_key_given_by_set_takes_the_text_when_yaml_reads_something_else(tmp_path, override, key, value):
    config = load_config_text(tmp_path, "", [override])
    assert getattr(getattr(config, override.split(".")[0]), key) == value


@pytest.mark.parametrize("override, message", [
    ("data.name=[a/b]", r"^--set data.name=\[a/b\]: data.name must be a plain folder name, got '\[a/b\]'$"),
    ("train.solver={gram: 1}", r"^--set train.solver={gram: 1}: train.solver must be one of auto, primal, gram, "
                               r"lbfgs, got '{gram: 1}'$"),
    ("train.num_iterations=[1]", r"^--set train.num_iterations=\[1\]: train.num_iterations must be a whole number, "
                                 r"got \[1\]$"),
])
def test_a_text_that_is_refused_is_still_refused(tmp_path, override, message):
    with pytest.raises(PipelineError, match=message):
        load_config_text(tmp_path, "", [override])


def test_set_data_name_2024_names_the_prepared_folder_2024(tmp_path):
    from tests.imagefolders import make_folder, write_config

    make_folder(tmp_path / "photos")
    write_config(tmp_path / "c.yaml", "photos")
    run_cli("prepare", "--config", "c.yaml", "--workers", "1", "--set", "data.name=2024", cwd=tmp_path, check=0)
    assert (tmp_path / "data" / "processed" / "2024" / "train.h5").is_file()


def test_a_bad_override_value_names_the_override_not_the_file(tmp_path):
    with pytest.raises(PipelineError, match=r"^--set train.learning_rate=-1: train.learning_rate must be > 0, got -1$"):
        load_config_text(tmp_path, "", ["train.learning_rate=-1"])
