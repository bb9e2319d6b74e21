"""Every value a config space can produce reaches the script intact."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from syne_tune_localx.arguments import JsonArgsMixin, config_to_json, encode_cli_value
from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.hooks import BackendHooks

ARGPARSE_SCRIPT = r'''
import argparse, json, sys
from syne_tune_localx.trial import parse_bool, read_config
p = argparse.ArgumentParser()
p.add_argument("--text", type=str, default=None)
p.add_argument("--my-key", type=str, default=None)
p.add_argument("--count", type=int, default=None)
p.add_argument("--rate", type=float, default=None)
p.add_argument("--naive_flag", type=bool, default=None)
p.add_argument("--flag", type=parse_bool, default=None)
p.add_argument("--nothing", type=str, default=None)
cfg = read_config(p)
print(json.dumps(cfg))
'''

JSON_SCRIPT = r'''
import json
from syne_tune_localx.trial import read_config
print(json.dumps(read_config()))
'''


class StubHost(JsonArgsMixin, BackendHooks):
    def __init__(self, root: Path, pass_args_as_json: bool = False):
        self.root = root
        self.pass_args_as_json = pass_args_as_json
        super().__init__()

    def trial_path(self, trial_id):
        return self.root / str(trial_id)

    def trial_visible_path(self, trial_id):
        return self.trial_path(trial_id)


def run_script(tmp_path, script_text, argv):
    script = tmp_path / "script.py"
    script.write_text(script_text)
    out = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


STRINGS = ["plain", "with space", "  padded  ", "-leading-dash", "--looks-like-flag", "a=b=c",
           "quote ' and \" and `", "unicode é ✓ 漢", "", "new\nline", "$HOME;rm -rf /"]
INTS = [0, 7, -7, 2**62, -(2**62)]
FLOATS = [0.0, -0.0, 1.5, -3.25, 1e-300, -1e-300, 1e300, -1e300, 1e-05, -1e-05, 0.1 + 0.2]


@pytest.mark.parametrize("value", STRINGS)
def test_strings_arrive_verbatim(tmp_path, value):
    host = StubHost(tmp_path)
    cfg = run_script(tmp_path, ARGPARSE_SCRIPT, host._config_arguments(0, {"text": value}))
    assert cfg["text"] == value


@pytest.mark.parametrize("count,rate", [(0, 0.0), (-7, -1e-05), (2**62, -0.0), (-(2**62), 1e300)])
def test_ints_floats_and_hyphenated_keys_through_argparse(tmp_path, count, rate):
    host = StubHost(tmp_path)
    argv = host._config_arguments(0, {"count": count, "rate": rate, "my-key": "v"})
    cfg = run_script(tmp_path, ARGPARSE_SCRIPT, argv)
    assert cfg["count"] == count and cfg["my_key"] == "v"
    assert cfg["rate"] == rate and math.copysign(1, cfg["rate"]) == math.copysign(1, rate)


@pytest.mark.parametrize("value", INTS + FLOATS)
def test_number_text_round_trips_exactly(value):
    text = encode_cli_value("v", value)
    assert type(value)(text) == value
    assert math.copysign(1, float(text)) == math.copysign(1, value)


def test_inf_and_nan(tmp_path):
    host = StubHost(tmp_path)
    cfg = run_script(tmp_path, ARGPARSE_SCRIPT.replace("print(json.dumps(cfg))",
                     "print(json.dumps({'r': repr(cfg['rate'])}))"),
                     host._config_arguments(0, {"rate": float("-inf")}))
    assert cfg["r"] == "-inf"
    assert math.isnan(float(encode_cli_value("rate", float("nan"))))


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)])
def test_booleans_with_type_bool_and_parse_bool(tmp_path, value):
    host = StubHost(tmp_path)
    argv = host._config_arguments(0, {"naive_flag": value, "flag": value})
    cfg = run_script(tmp_path, ARGPARSE_SCRIPT, argv)
    assert cfg["naive_flag"] is bool(value)
    assert cfg["flag"] is bool(value)


def test_none_leaves_the_flag_out(tmp_path):
    host = StubHost(tmp_path)
    argv = host._config_arguments(0, {"nothing": None, "count": 1})
    assert argv == ["--count=1"]
    assert run_script(tmp_path, ARGPARSE_SCRIPT, argv)["nothing"] is None


def test_numpy_scalars_become_python_values(tmp_path):
    host = StubHost(tmp_path)
    argv = host._config_arguments(0, {"count": np.int64(5), "rate": np.float32(0.5)})
    cfg = run_script(tmp_path, ARGPARSE_SCRIPT, argv)
    assert cfg["count"] == 5 and cfg["rate"] == 0.5


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, (1, 2), object()])
def test_unsupported_cli_value_names_key_and_fix(tmp_path, value):
    with pytest.raises(ConfigurationError, match=r"config\['layers'\].*pass_args_as_json=True"):
        StubHost(tmp_path)._config_arguments(0, {"layers": value})


@pytest.mark.parametrize("key", ["", "-x", "a=b", "with space", 3])
def test_bad_keys_are_rejected(tmp_path, key):
    with pytest.raises(ConfigurationError, match="cannot be a command-line flag"):
        StubHost(tmp_path)._config_arguments(0, {key: 1})


def test_nul_in_string_is_rejected(tmp_path):
    with pytest.raises(ConfigurationError, match="NUL"):
        StubHost(tmp_path)._config_arguments(0, {"text": "a\x00b"})


def test_json_mode_round_trip(tmp_path):
    host = StubHost(tmp_path, pass_args_as_json=True)
    config = {
        "text": "with space -x",
        "count": -3,
        "rate": -1e-300,
        "flag": False,
        "nothing": None,
        "layers": [64, 32, 16],
        "nested": {"a": [1, {"b": None}], "c": "d"},
        "np": np.int64(9),
        "arr": np.array([1.5, 2.5]),
    }
    files = host._trial_files(0, config)
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "config.json").write_text(files["config.json"])
    argv = host._config_arguments(0, config)
    assert argv == [f"--st_config_json_filename={tmp_path / '0' / 'config.json'}"]
    cfg = run_script(tmp_path, JSON_SCRIPT, argv + ["--st_checkpoint_dir=/some where"])
    expected = dict(config, np=9, arr=[1.5, 2.5], st_checkpoint_dir="/some where")
    assert cfg == expected


def test_json_error_names_the_key():
    with pytest.raises(ConfigurationError, match=r"config\['fn'\]"):
        config_to_json({"ok": 1, "fn": lambda x: x})
    with pytest.raises(ConfigurationError, match="string keys"):
        config_to_json({1: 2})


def test_config_json_always_written_in_cli_mode(tmp_path):
    files = StubHost(tmp_path)._trial_files(0, {"count": 2})
    assert json.loads(files["config.json"]) == {"count": 2}


def test_a_value_too_long_for_one_argument_is_refused_before_launch(tmp_path):
    # a 3 MB string once reached execve and failed there with E2BIG
    with pytest.raises(ConfigurationError, match="bytes long.*pass_args_as_json=True"):
        StubHost(tmp_path)._config_arguments(0, {"text": "x" * 200_000})
    # 100 kB still fits
    cfg = run_script(tmp_path, ARGPARSE_SCRIPT, StubHost(tmp_path)._config_arguments(0, {"text": "y" * 100_000}))
    assert cfg["text"] == "y" * 100_000
