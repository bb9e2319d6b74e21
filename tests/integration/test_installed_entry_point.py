"""The installed package's metadata registers ``localx`` and the registry finds it.

These tests read the real metadata of the installed (or editable) package, so
they prove the packaging in setup.cfg, not just the registry code.
"""

import importlib.metadata
import importlib.util
import os

import pytest

from syne_tune_localx.registry import (
    ENTRY_POINT_GROUP,
    available_backends,
    backend_options,
    clear_cache,
    load_backend_class,
    make_backend,
)

LOCALX_VALUE = "syne_tune_localx.backend:LocalXBackend"

needs_backend_module = pytest.mark.skipif(
    importlib.util.find_spec("syne_tune_localx.backend") is None,
    reason="syne_tune_localx/backend.py is not written yet",
)


@pytest.fixture(autouse=True)
def _isolate():
    clear_cache()
    saved = os.environ.get("OMP_NUM_THREADS")
    yield
    clear_cache()
    if saved is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = saved


def test_localx_entry_point_is_installed():
    found = [
        ep
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.name == "localx"
    ]
    assert len(found) == 1, found
    assert found[0].value == LOCALX_VALUE
    assert found[0].dist.name == "syne-tune-localx"


def test_available_backends_lists_localx_and_builtins():
    listed = available_backends()
    assert {"localx", "local", "python"} <= set(listed)
    version = importlib.metadata.version("syne-tune-localx")
    assert listed["localx"] == f"syne-tune-localx {version} ({LOCALX_VALUE})"
    assert listed["local"] == "built-in (syne_tune.backend.local_backend:LocalBackend)"


@needs_backend_module
def test_localx_loads_the_backend_class():
    from syne_tune.backend.trial_backend import TrialBackend

    from syne_tune_localx.backend import LocalXBackend

    assert load_backend_class("localx") is LocalXBackend
    assert issubclass(LocalXBackend, TrialBackend)


@needs_backend_module
def test_localx_accepts_the_local_backend_options():
    options = backend_options(load_backend_class("localx"))
    assert {
        "entry_point", "binary", "delete_checkpoints", "pass_args_as_json",
        "rotate_gpus", "num_gpus_per_trial", "gpus_to_use",
    } <= set(options)
    assert options["entry_point"].default is options["entry_point"].empty


@needs_backend_module
def test_make_backend_builds_localx_from_a_yaml_file(tmp_path):
    from syne_tune_localx.backend import LocalXBackend

    (tmp_path / "train.py").write_text("print('hello')\n")
    spec_file = tmp_path / "backend.yaml"
    spec_file.write_text(
        "backend:\n  name: localx\n  options:\n    entry_point: train.py\n"
        "    delete_checkpoints: true\n"
    )
    backend = make_backend(spec_file)
    assert isinstance(backend, LocalXBackend)
    assert backend.entry_point == str(tmp_path / "train.py")
    assert backend.delete_checkpoints is True
