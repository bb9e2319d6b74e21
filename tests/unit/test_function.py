"""Tests of :mod:`syne_tune_localx.function` and :mod:`syne_tune_localx.function_runner`."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syne_tune_localx import LocalXBackend
from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.function import (
    RUNNER_MODULE,
    SHA_ARG,
    serialize_function,
    write_payload,
)
from syne_tune_localx.function_runner import RunnerError, call_arguments, load_payload


def make_closure(offset):
    def objective(x, report):
        report(loss=(x - offset) ** 2)

    return objective


def payload_file(tmp_path, fn) -> tuple[Path, str]:
    payload = serialize_function(fn)
    return write_payload(payload, fn.__name__, tmp_path), hashlib.sha256(payload).hexdigest()


def run_runner(path: Path, digest: str, config: dict, tmp_path: Path, **popen):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    argv = [
        sys.executable,
        "-m",
        RUNNER_MODULE,
        f"--{SHA_ARG}={digest}",
        str(path),
        f"--st_config_json_filename={config_file}",
        f"--st_checkpoint_dir={tmp_path / 'checkpoints'}",
    ]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", **popen
    )


def metric_lines(stdout: str) -> list[dict]:
    return [json.loads(line.split(": ", 1)[1]) for line in stdout.splitlines() if line.startswith("[tune-metric]")]


def test_closure_round_trips_through_the_payload(tmp_path):
    path, digest = payload_file(tmp_path, make_closure(0.5))
    assert path.parent == tmp_path and path.name.startswith("objective-") and path.suffix == ".dill"
    fn, header = load_payload(path, digest)
    seen = []
    fn(x=1.5, report=lambda **m: seen.append(m))
    assert seen == [{"loss": 1.0}]
    assert header["qualname"].endswith("make_closure.<locals>.objective")


def test_payload_is_content_addressed(tmp_path):
    first, _ = payload_file(tmp_path, make_closure(1.0))
    again, _ = payload_file(tmp_path, make_closure(1.0))
    other, _ = payload_file(tmp_path, make_closure(2.0))
    assert first == again and first != other
    assert len(list(tmp_path.glob("*.dill"))) == 2


def test_runner_refuses_a_changed_payload(tmp_path):
    path, digest = payload_file(tmp_path, make_closure(0.0))
    with pytest.raises(RunnerError, match="the file changed after from_function created it"):
        load_payload(path, "0" * 64)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(RunnerError, match=f"has SHA-256 .* but the backend wrote {digest}"):
        load_payload(path, digest)
    with pytest.raises(RunnerError, match="cannot read the function payload"):
        load_payload(tmp_path / "gone.dill", digest)


def test_call_arguments():
    def fn(lr, epochs=1, report=None, checkpoint_dir=None):
        pass

    kwargs = call_arguments(fn, {"lr": 0.1}, "/ckpt", "R")
    assert kwargs == {"lr": 0.1, "report": "R", "checkpoint_dir": "/ckpt"}
    with pytest.raises(RunnerError, match="takes no argument 'momentum'"):
        call_arguments(fn, {"lr": 0.1, "momentum": 0.9}, None, None)
    with pytest.raises(RunnerError, match="needs 'lr'"):
        call_arguments(fn, {}, None, None)
    with pytest.raises(RunnerError, match="rename the hyperparameter"):
        call_arguments(fn, {"lr": 1, "report": 2}, None, None)

    def loose(**config):
        pass

    assert call_arguments(loose, {"a": 1, "b": [2]}, "/c", "R") == {"a": 1, "b": [2]}


def test_from_function_builds_a_plain_localx_backend(tmp_path):
    backend = LocalXBackend.from_function(make_closure(0.0), payload_dir=tmp_path, num_gpus_per_trial=0)
    assert type(backend) is LocalXBackend
    assert backend.pass_args_as_json is True
    assert Path(backend.entry_point).parent == tmp_path
    assert backend.binary[:3] == [sys.executable, "-m", RUNNER_MODULE]
    digest = hashlib.sha256(Path(backend.entry_point).read_bytes()).hexdigest()
    assert backend.binary[3] == f"--{SHA_ARG}={digest}"


def test_from_function_rejects_what_it_sets(tmp_path):
    fn = make_closure(0.0)
    for key in ("entry_point", "binary"):
        with pytest.raises(ConfigurationError, match=f"from_function sets '{key}' itself"):
            LocalXBackend.from_function(fn, payload_dir=tmp_path, **{key: "x"})
    with pytest.raises(ConfigurationError, match="remove pass_args_as_json=False"):
        LocalXBackend.from_function(fn, payload_dir=tmp_path, pass_args_as_json=False)
    with pytest.raises(ConfigurationError, match="needs a function"):
        LocalXBackend.from_function(42, payload_dir=tmp_path)


def test_unpicklable_capture_is_explained(tmp_path):
    generator = (i for i in range(3))

    def fn(x):
        return {"loss": next(generator)}

    with pytest.raises(ConfigurationError, match="must be picklable"):
        LocalXBackend.from_function(fn, payload_dir=tmp_path)


def test_runner_calls_the_function_and_reports_its_return_value(tmp_path):
    scale = 3.0

    def fn(x, name, flags, checkpoint_dir):
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        (Path(checkpoint_dir) / "seen.json").write_text(json.dumps([x, name, flags]))
        return {"loss": x * scale}

    path, digest = payload_file(tmp_path, fn)
    # JSON mode keeps every type: floats, strings with spaces, lists, None
    process = run_runner(path, digest, {"x": 2.0, "name": "a b", "flags": [True, None]}, tmp_path)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert [m["loss"] for m in metric_lines(stdout)] == [6.0]
    seen = json.loads((tmp_path / "checkpoints" / "seen.json").read_text())
    assert seen == [2.0, "a b", [True, None]]


def test_runner_exits_2_with_a_message_on_a_bad_call_or_return(tmp_path):
    def fn(x):
        return 3.0

    path, digest = payload_file(tmp_path, fn)
    process = run_runner(path, digest, {"x": 1, "y": 2}, tmp_path)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "takes no argument 'y'" in stderr and "Traceback" not in stderr
    process = run_runner(path, digest, {"x": 1}, tmp_path)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "returned 3.0; return a dict of metrics" in stderr
    process = run_runner(path, "f" * 64, {"x": 1}, tmp_path)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "the file changed" in stderr


def test_sigterm_raises_inside_the_function_so_cleanup_runs(tmp_path):
    marker = tmp_path / "cleaned-up"

    def fn(x, report):
        try:
            report(step=1)
            while True:
                time.sleep(0.01)
        finally:
            marker.write_text("yes")

    path, digest = payload_file(tmp_path, fn)
    process = run_runner(path, digest, {"x": 1}, tmp_path)
    deadline = time.monotonic() + 30
    first = process.stdout.readline()
    assert first.startswith("[tune-metric]") and time.monotonic() < deadline
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert marker.read_text() == "yes"
    assert "stopped by SIGTERM" in stderr


def _load_by_path(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_function_from_a_module_loaded_by_file_path_runs_in_the_trial(tmp_path):
    # importable in the tuner (in sys.modules) but not by name in a fresh process
    folder = tmp_path / "not-on-sys-path"
    folder.mkdir()
    name = f"localx_pathmod_{os.getpid()}"
    (folder / f"{name}.py").write_text(
        "class Scale:\n"
        "    def __init__(self, k):\n"
        "        self.k = k\n\n"
        "def helper(x):\n"
        "    return Scale(2.0).k * x\n\n"
        "def f(x, epochs):\n"
        "    return {'loss': helper(x) + epochs}\n"
    )
    try:
        module = _load_by_path(folder / f"{name}.py", name)
        path, digest = payload_file(tmp_path, module.f)
    finally:
        sys.modules.pop(name, None)
    process = run_runner(path, digest, {"x": 0.5, "epochs": 1}, tmp_path)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert [m["loss"] for m in metric_lines(stdout)] == [2.0]


def test_function_from_a_module_without_a_file_is_refused_with_the_fix(tmp_path):
    import types

    name = f"localx_nofile_{os.getpid()}"
    module = types.ModuleType(name)
    exec("def f(x):\n    return {'loss': x}\n", module.__dict__)
    sys.modules[name] = module
    try:
        with pytest.raises(ConfigurationError) as caught:
            serialize_function(module.f)
    finally:
        sys.modules.pop(name, None)
    message = str(caught.value)
    assert f"module {name!r}" in message and "cannot be imported in the trial" in message
    assert "importable module" in message and "__main__" in message
