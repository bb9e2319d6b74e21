"""Tests of :mod:`syne_tune_localx.experiment`: reading and checking experiment files."""

import json
from pathlib import Path

import pytest
from syne_tune.config_space import Categorical, Domain, FiniteRange, Float, Integer

from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.experiment import (
    DOMAIN_NAMES,
    apply_overrides,
    available_schedulers,
    load_experiment_file,
    parse_domain,
    parse_experiment,
    parse_yaml_value,
    read_document,
)

TRAIN = "print('the training script is never run by these tests')\n"

MINIMAL = """\
backend:
  name: localx
  options: {entry_point: train.py, num_gpus_per_trial: 0}
config_space:
  x: uniform(0, 1)
metric: loss
stop: {max_num_trials_started: 3}
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    return tmp_path


def write(folder: Path, text: str, name: str = "exp.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigurationError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------
# domains


@pytest.mark.parametrize(
    "text, kind, attrs",
    [
        ("uniform(-1, 1)", Float, {"lower": -1, "upper": 1}),
        ("loguniform(1e-4, 1e-1)", Float, {"lower": 1e-4, "upper": 1e-1}),
        ("randint(1, 8)", Integer, {"lower": 1, "upper": 8}),
        ("lograndint(lower=2, upper=64)", Integer, {"lower": 2, "upper": 64}),
        ("choice(['relu', 'tanh'])", Categorical, {"categories": ["relu", "tanh"]}),
        ("finrange(0.1, 0.5, 5)", FiniteRange, {"lower": 0.1, "upper": 0.5, "size": 5}),
    ],
)
def test_call_form_builds_syne_tune_domains(text, kind, attrs):
    domain = parse_domain(text)
    assert isinstance(domain, kind)
    for name, value in attrs.items():
        assert getattr(domain, name) == value


def test_mapping_form_matches_call_form():
    a = parse_domain({"type": "loguniform", "lower": 1e-4, "upper": 1e-1})
    b = parse_domain("loguniform(1e-4, 1e-1)")
    assert type(a) is type(b) and (a.lower, a.upper) == (b.lower, b.upper)
    assert a.sampler.__class__ is b.sampler.__class__


@pytest.mark.parametrize("value", [3, 0.5, "relu", True, None, [1, 2], {"a": 1}])
def test_other_values_are_constants(value):
    assert parse_domain(value) == value


def test_domain_is_a_synonym_of_type():
    domain = parse_domain({"domain": "choice", "categories": ["a", "b"]})
    assert isinstance(domain, Categorical) and domain.categories == ["a", "b"]
    message = error_of(parse_domain, {"type": "choice", "domain": "choice", "categories": [1]})
    assert "give the domain name once" in message


def test_constant_escape_keeps_text_that_looks_like_a_domain():
    assert parse_domain({"type": "constant", "value": "f(x)"}) == "f(x)"
    assert parse_domain({"type": "constant", "value": {"type": "x"}}) == {"type": "x"}


def test_every_listed_domain_exists_in_syne_tune():
    import syne_tune.config_space as cs

    assert all(callable(getattr(cs, name, None)) for name in DOMAIN_NAMES)


def test_unknown_domain_lists_the_available_ones():
    message = error_of(parse_domain, "loguniformm(1, 2)", "config_space.lr")
    assert "config_space.lr" in message and "'loguniformm'" in message
    assert "Did you mean 'loguniform'?" in message
    assert "'randint'" in message and "'choice'" in message and "'finrange'" in message
    assert "{type: constant, value: ...}" in message
    message = error_of(parse_domain, {"type": "normal", "mean": 0})
    assert "unknown domain 'normal'" in message and "'uniform'" in message


@pytest.mark.parametrize(
    "value, expected",
    [
        ("uniform(1)", "missing a required argument: 'upper'"),
        ("uniform(0, 1, 2)", "too many positional arguments"),
        ({"type": "uniform", "low": 0, "upper": 1}, "takes no argument 'low'; its arguments are (lower, upper)"),
        ("uniform(1, 0)", "lower (1) must be smaller than upper (0)"),
        ("loguniform(0, 1)", "a log-scaled domain needs lower > 0"),
        ("randint(0.5, 3)", "must be a whole number"),
        ("uniform('a', 1)", "lower must be a number"),
        ("choice([])", "categories must be a non-empty list"),
        ("finrange(0, 1, 0)", "size must be a whole number >= 1"),
        ("uniform(x, 1)", "must be literals"),
        ("uniform(0, 1", "does not end with ')'"),
        ("uniform(0,)1)", "cannot read the arguments"),
    ],
)
def test_bad_domain_arguments_say_what_is_wrong(value, expected):
    message = error_of(parse_domain, value, "config_space.p")
    assert expected in message, message
    assert message.startswith("config_space.p: ")


def test_yaml_reads_exponent_floats_as_numbers():
    assert parse_yaml_value("1e-4") == 1e-4
    assert parse_yaml_value("-2E+3") == -2000.0
    assert parse_yaml_value("3") == 3 and parse_yaml_value("abc") == "abc"
    assert parse_yaml_value("[a, 1]") == ["a", 1]
    assert parse_yaml_value("{a: 1") == "{a: 1"  # not YAML: kept as text


# --------------------------------------------------------------------------
# reading files


def test_yaml_syntax_error_gives_line_column_and_line(folder):
    path = write(folder, "backend:\n  name: localx\n  options: {entry_point: train.py\nmetric: loss\n")
    message = error_of(read_document, path)
    assert f"Invalid YAML in {path}, line 4, column 7" in message
    assert "'metric: loss'" in message


def test_json_syntax_error_gives_line(folder):
    path = write(folder, '{\n  "metric": "loss",\n  "mode": min\n}\n', "exp.json")
    message = error_of(read_document, path)
    assert "Invalid JSON" in message and "line 3" in message


def test_duplicate_yaml_keys_are_errors(folder):
    path = write(folder, MINIMAL + "metric: accuracy\n")
    message = error_of(read_document, path)
    assert "duplicate key 'metric' (first at line 6)" in message and "line 8" in message


def test_unknown_suffix_and_missing_file(folder):
    assert "none of .yaml, .yml, .json" in error_of(read_document, folder / "exp.toml")
    assert "does not exist" in error_of(read_document, folder / "nope.yaml")


# --------------------------------------------------------------------------
# experiments


def test_minimal_experiment_and_defaults(folder):
    path = write(folder, MINIMAL)
    experiment = load_experiment_file(path)
    assert experiment.name == "exp"
    assert experiment.mode == "min" and experiment.n_workers == 1
    assert experiment.scheduler_class.__name__ == "RandomSearch"
    assert experiment.backend_options["entry_point"] == str(folder / "train.py")
    assert isinstance(experiment.config_space["x"], Domain)
    assert experiment.tuner_options == {"sleep_time": 0.5}
    assert experiment.results_dir is None
    backend = experiment.make_backend()
    assert backend.entry_point == str(folder / "train.py")
    scheduler = experiment.make_scheduler()
    assert scheduler.metric_names() == ["loss"] and scheduler.metric_mode() == "min"


def test_relative_paths_resolve_against_the_file_folder(folder, tmp_path, monkeypatch):
    path = write(folder, MINIMAL + "results_dir: out/runs\n")
    monkeypatch.chdir(tmp_path.parent)
    experiment = load_experiment_file(path)
    assert experiment.results_dir == folder / "out" / "runs"
    assert experiment.backend_options["entry_point"] == str(folder / "train.py")


def test_json_experiment(folder):
    document = {
        "backend": {"name": "localx", "options": {"entry_point": "train.py"}},
        "config_space": {"lr": {"type": "loguniform", "lower": 1e-4, "upper": 0.1}, "epochs": 3},
        "metric": "accuracy",
        "mode": "max",
        "scheduler": {"name": "ASHA", "options": {"time_attr": "epoch", "max_t": 3}},
        "stop": {"max_wallclock_time": 10},
        "n_workers": 2,
    }
    path = write(folder, json.dumps(document, indent=2), "exp.json")
    experiment = load_experiment_file(path)
    scheduler = experiment.make_scheduler()
    assert scheduler.metric_mode() == "max" and experiment.time_attr == "epoch"


def test_unknown_top_level_key_names_line_and_allowed_keys(folder):
    path = write(folder, MINIMAL + "n_worker: 2\n")
    message = error_of(load_experiment_file, path)
    assert f"{path}, line 8 (key n_worker)" in message
    assert "Did you mean 'n_workers'?" in message and "'config_space'" in message


def test_common_other_names_of_keys_get_a_hint(folder):
    path = write(folder, MINIMAL.replace("stop:", "stop_criterion:"))
    assert "unknown key 'stop_criterion'. Did you mean 'stop'?" in error_of(load_experiment_file, path)


def test_missing_required_keys_show_examples(folder):
    path = write(folder, "backend: {name: localx, options: {entry_point: train.py}}\n")
    message = error_of(load_experiment_file, path)
    assert "needs 'config_space', 'metric', 'stop'" in message
    assert "`stop: {max_wallclock_time: 600}`" in message


def test_unknown_domain_in_file_names_its_line(folder):
    path = write(folder, MINIMAL.replace("uniform(0, 1)", "uniformm(0, 1)"))
    message = error_of(load_experiment_file, path)
    assert f"{path}, line 5 (key config_space.x): unknown domain 'uniformm'" in message


def test_unknown_backend_lists_available(folder):
    path = write(folder, MINIMAL.replace("name: localx", "name: localz"))
    message = error_of(load_experiment_file, path)
    assert "(key backend.name)" in message and "'localz'" in message
    assert "'localx'" in message and "'local'" in message


def test_backend_option_not_accepted_lists_accepted(folder):
    path = write(folder, MINIMAL.replace("num_gpus_per_trial", "num_gpu_per_trial"))
    message = error_of(load_experiment_file, path)
    assert "line 3 (key backend.options.num_gpu_per_trial)" in message
    assert "takes no option 'num_gpu_per_trial'" in message
    assert "'num_gpu_per_trial' -> 'num_gpus_per_trial'?" in message and "'stop_grace_period'" in message


def test_backend_constructor_rejection_is_wrapped(folder):
    path = write(folder, MINIMAL)
    experiment = load_experiment_file(path, ["backend.options.stop_grace_period=-1"])
    message = error_of(experiment.make_backend)
    assert "stop_grace_period=-1 must be a finite number of seconds >= 0" in message
    assert "(key backend.options, with --set backend.options.stop_grace_period=-1)" in message


def test_missing_entry_point_file(folder):
    message = error_of(load_experiment_file, write(folder, MINIMAL.replace("train.py", "nope.py")))
    assert "the training script 'nope.py' does not exist" in message
    assert str(folder / "nope.py") in message


def test_schedulers_offered():
    names = available_schedulers()
    for name in ("RandomSearch", "ASHA", "BOHB", "TPE", "REA", "PopulationBasedTraining"):
        assert name in names


@pytest.mark.parametrize("name, expected", [("PBT", "PopulationBasedTraining"), ("asha", "ASHA")])
def test_scheduler_aliases_and_case(folder, name, expected):
    options = "{time_attr: epoch, max_t: 3}"
    path = write(folder, MINIMAL + f"scheduler: {{name: {name}, options: {options}}}\n")
    assert load_experiment_file(path).scheduler_class.__name__ == expected


def test_unknown_scheduler_lists_available(folder):
    path = write(folder, MINIMAL + "scheduler: Hyperband\n")
    message = error_of(load_experiment_file, path)
    assert "unknown scheduler 'Hyperband'" in message
    assert "'ASHA'" in message and "'RandomSearch'" in message and "'PopulationBasedTraining'" in message


def test_scheduler_option_checks(folder):
    path = write(folder, MINIMAL + "scheduler: {name: ASHA, options: {time_attr: epoch, max_t: 3, grace: 1}}\n")
    message = error_of(load_experiment_file, path)
    assert "ASHA takes no option 'grace'" in message and "'grace_period'" in message
    path = write(folder, MINIMAL + "scheduler: {name: ASHA}\n")
    message = error_of(load_experiment_file, path)
    assert "ASHA needs the option(s) 'time_attr', 'max_t'" in message
    path = write(folder, MINIMAL + "scheduler: {name: ASHA, options: {metric: acc}}\n")
    message = error_of(load_experiment_file, path)
    assert "filled in from the top-level key 'metric'" in message


def test_scheduler_constructor_rejection_is_wrapped(folder):
    path = write(folder, MINIMAL + "scheduler: {name: ASHA, options: {time_attr: epoch, max_t: 0}}\n")
    message = error_of(load_experiment_file(path).make_scheduler)
    assert "ASHA rejected its options" in message and "scheduler.options" in message


def test_stop_tuner_and_other_fields(folder):
    message = error_of(load_experiment_file, write(folder, MINIMAL.replace("max_num_trials_started", "max_trials")))
    assert "unknown stopping criterion 'max_trials'" in message and "'max_num_trials_started'" in message
    message = error_of(load_experiment_file, write(folder, MINIMAL + "tuner: {sleeptime: 1}\n"))
    assert "Did you mean 'sleep_time'?" in message
    message = error_of(load_experiment_file, write(folder, MINIMAL + "tuner: {n_workers: 4}\n"))
    assert "set the top-level key `n_workers:` instead" in message
    message = error_of(load_experiment_file, write(folder, MINIMAL + "mode: maximize\n"))
    assert "mode must be 'min' or 'max'" in message
    message = error_of(load_experiment_file, write(folder, MINIMAL + "name: my_run\n"))
    assert "name must be letters and digits" in message
    message = error_of(load_experiment_file, write(folder, MINIMAL.replace("uniform(0, 1)", "3")))
    assert "nothing to tune" in message


def test_overrides(folder):
    path = write(folder, MINIMAL + "scheduler: RandomSearch\n")
    experiment = load_experiment_file(
        path,
        [
            "n_workers=3",
            "stop.max_wallclock_time=30",
            "config_space.lr=loguniform(1e-5, 1e-2)",
            "scheduler.options.random_seed=7",
            "tuner.sleep_time=0.1",
        ],
    )
    assert experiment.n_workers == 3
    assert experiment.stop == {"max_num_trials_started": 3, "max_wallclock_time": 30}
    assert experiment.config_space["lr"].lower == 1e-5
    assert experiment.scheduler_options == {"random_seed": 7}
    assert experiment.tuner_options["sleep_time"] == 0.1


def test_bad_overrides():
    assert "not of the form KEY=VALUE" in error_of(apply_overrides, {}, ["n_workers"])
    assert "unknown top-level key 'workers'" in error_of(apply_overrides, {}, ["workers=2"])
    message = error_of(apply_overrides, {"metric": "loss"}, ["metric.name=x"])
    assert "metric is 'loss', not a mapping" in message


def test_override_errors_point_at_the_override(folder):
    path = write(folder, MINIMAL)
    message = error_of(load_experiment_file, path, ["config_space.x=uniform(2, 1)"])
    assert message.startswith("--set config_space.x=uniform(2, 1) (key config_space.x)")


def test_parse_experiment_from_dictionary(folder):
    import yaml

    document = yaml.safe_load(MINIMAL)
    experiment = parse_experiment(document, base_dir=folder)
    assert experiment.backend_options["entry_point"] == str(folder / "train.py")
    assert experiment.document["backend"]["options"]["entry_point"] == str(folder / "train.py")


# --------------------------------------------------------------------------
# checks before any trial starts


def test_paths_are_normalised_and_constants_are_not_tuned(folder):
    (folder / "sub").mkdir()
    text = MINIMAL.replace("entry_point: train.py", "entry_point: ./sub/../train.py") + "results_dir: sub/../out/./runs\n"
    experiment = load_experiment_file(write(folder, text.replace("  x: uniform(0, 1)\n", "  x: uniform(0, 1)\n  epochs: 3\n")))
    assert experiment.backend_options["entry_point"] == str(folder / "train.py")
    assert experiment.results_dir == folder / "out" / "runs"
    assert experiment.tuned_names == ["x"]


def test_flow_mapping_split_at_commas_suggests_quoting(folder):
    text = MINIMAL.replace("config_space:\n  x: uniform(0, 1)\n", "config_space: {x: loguniform(1e-4, 1e-1), y: 3}\n")
    message = error_of(load_experiment_file, write(folder, text))
    assert "line 4 (key config_space.x): 'loguniform(1e-4' is the start of the domain 'loguniform(1e-4, 1e-1)'" in message
    assert "YAML splits a flow mapping" in message and 'x: "loguniform(1e-4, 1e-1)"' in message
    # a missing ')' alone is still said as such
    message = error_of(load_experiment_file, write(folder, MINIMAL.replace("uniform(0, 1)", "uniform(0, 1")))
    assert "does not end with ')'" in message


@pytest.mark.parametrize(
    "option, expected",
    [
        ("max_failures: abc", "max_failures must be a whole number >= 0, got 'abc'"),
        ("max_failures: 1.5", "max_failures must be a whole number >= 0, got 1.5"),
        ("max_failures: true", "max_failures must be a whole number >= 0, got True"),
        ("results_update_interval: soon", "results_update_interval must be seconds >= 0, got 'soon'"),
        ("print_update_interval: -1", "print_update_interval must be seconds >= 0, got -1"),
        ("sleep_time: .nan", "sleep_time must be seconds >= 0, got nan"),
        ("save_tuner: 'false'", "save_tuner must be true or false, got 'false'"),
        ("wait_trial_completion_when_stopping: 1", "wait_trial_completion_when_stopping must be true or false"),
    ],
)
def test_tuner_options_are_type_checked(folder, option, expected):
    message = error_of(load_experiment_file, write(folder, MINIMAL + f"tuner: {{{option}}}\n"))
    assert f"(key tuner.{option.split(':')[0]}): {expected}" in message


def test_valid_tuner_options_pass(folder):
    text = MINIMAL + "tuner: {max_failures: 0, print_update_interval: 5, results_update_interval: 2.5, save_tuner: false}\n"
    assert load_experiment_file(write(folder, text)).tuner_options["max_failures"] == 0


def test_results_dir_checks_create_nothing(folder, monkeypatch):
    (folder / "a-file").write_text("x")
    experiment = load_experiment_file(write(folder, MINIMAL + "results_dir: a-file/runs\n"))
    message = error_of(experiment.check_results_dir)
    assert "line 8 (key results_dir): cannot create the results folder" in message
    assert f"{folder / 'a-file'} is a file" in message
    # the default folder: $SYNETUNE_FOLDER
    monkeypatch.setenv("SYNETUNE_FOLDER", str(folder / "a-file" / "st"))
    experiment = load_experiment_file(write(folder, MINIMAL))
    message = error_of(experiment.check_results_dir)
    assert "the default results folder ($SYNETUNE_FOLDER): cannot create" in message
    monkeypatch.setenv("SYNETUNE_FOLDER", str(folder / "new" / "st"))
    assert load_experiment_file(write(folder, MINIMAL)).check_results_dir() == folder / "new" / "st"
    assert not (folder / "new").exists()


class _RecordingBackend:
    """Takes every configuration; records what it was asked."""

    pass_args_as_json = False

    def __init__(self):
        self.seen = []

    def _config_arguments(self, trial_id, config):
        self.seen.append(dict(config))
        return []

    def _trial_files(self, trial_id, config):
        return {}


def test_config_values_check_every_category_and_a_sample_of_other_domains(folder):
    text = MINIMAL.replace("  x: uniform(0, 1)\n", "  x: uniform(0, 1)\n  act: choice(['relu', 'tanh', 'gelu'])\n  epochs: 3\n")
    experiment = load_experiment_file(write(folder, text))
    backend = _RecordingBackend()
    experiment.check_config_values(backend)
    single = [c for c in backend.seen if len(c) == 1]
    assert [c["act"] for c in single if "act" in c] == ["relu", "tanh", "gelu"]
    assert [c["epochs"] for c in single if "epochs" in c] == [3]
    assert all(0 <= c["x"] <= 1 for c in single if "x" in c)
    assert set(backend.seen[-1]) == {"x", "act", "epochs"}  # the whole configuration, once
    # a backend without those hooks is not checked
    experiment.check_config_values(object())


def test_config_values_the_localx_backend_cannot_pass(folder):
    def check(extra, *overrides):
        text = MINIMAL.replace("  x: uniform(0, 1)\n", "  x: uniform(0, 1)\n" + extra)
        experiment = load_experiment_file(write(folder, text), list(overrides))
        return experiment.check_config_values(experiment.make_backend())

    message = error_of(check, "  layers: [64, 32]\n")
    assert message.startswith(f"{folder / 'exp.yaml'}, line 6 (key config_space.layers): config_space.layers is a list")
    assert "which the command line cannot carry; set backend.options.pass_args_as_json: true" in message
    message = error_of(check, "  opt: {name: sgd}\n")
    assert "config_space.opt is a mapping, which the command line cannot carry" in message
    message = error_of(check, "  sizes: choice([[1], [2, 3]])\n")
    assert "(key config_space.sizes): the category [1] is a list" in message
    message = error_of(check, "  tag: \"a\\0b\"\n")
    assert "(key config_space.tag): the backend cannot pass the value 'a\\x00b' to a trial" in message
    assert "NUL character" in message
    message = error_of(check, "  -lr: 1\n")
    assert "config_space key '-lr' cannot be a command-line flag" in message
    # JSON carries lists, mappings and any key
    check("  layers: [64, 32]\n  opt: {name: sgd}\n  a b: 1\n", "backend.options.pass_args_as_json=true")


def test_several_metrics_for_a_single_objective_scheduler(folder):
    experiment = load_experiment_file(write(folder, MINIMAL.replace("metric: loss", "metric: [loss, acc]")))
    message = error_of(experiment.make_scheduler)
    assert "line 6 (key metric): RandomSearch optimises one metric, got ['loss', 'acc']" in message
    assert "`metric: loss`" in message and "EHVI" in message and "object at 0x" not in message
