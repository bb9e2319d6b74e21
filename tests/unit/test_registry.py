"""Tests of :mod:`syne_tune_localx.registry`.

At the metadata boundary these tests use real ``importlib.metadata`` objects:
each fake plugin is a ``*.dist-info`` folder written to ``tmp_path`` and read
through ``importlib.metadata.PathDistribution``, whose ``entry_points`` are real
``EntryPoint`` objects with the distribution attached. Most tests inject them by
replacing ``registry._entry_points``; two put the folder on ``sys.path`` so that
the real discovery finds it. The classes they point at live in small modules
written to ``tmp_path`` under unique names.
"""

import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest

from syne_tune_localx import registry
from syne_tune_localx.errors import (
    BackendLoadError,
    BackendNotFoundError,
    ConfigurationError,
)
from syne_tune_localx.registry import (
    ENTRY_POINT_GROUP,
    BackendRegistryWarning,
    available_backends,
    backend_options,
    clear_cache,
    load_backend_class,
    make_backend,
)

BUILTINS = {
    "local": "built-in (syne_tune.backend.local_backend:LocalBackend)",
    "python": "built-in (syne_tune.backend.python_backend.python_backend:PythonBackend)",
}

PLUGIN_SOURCE = '''
from syne_tune.backend.trial_backend import TrialBackend


class GoodBackend(TrialBackend):
    def __init__(self, entry_point, *, speed: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.entry_point = entry_point
        self.speed = speed


class _AlphaMixin:
    def __init__(self, *, alpha: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha


class _BetaMixin:
    def __init__(self, *, beta, delete_checkpoints_twice=False, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta


class MixedBackend(_AlphaMixin, _BetaMixin, TrialBackend):
    def __init__(self, entry_point, **kwargs):
        super().__init__(**kwargs)
        self.entry_point = entry_point


class NotABackend:
    pass


not_a_class = 42
'''

BROKEN_SOURCE = 'raise RuntimeError("boom while importing the plugin")\n'


@pytest.fixture(autouse=True)
def _isolate():
    """Empty cache around each test; undo the OMP_NUM_THREADS that importing
    syne_tune.backend sets, so that later tests in the session see the real env."""
    clear_cache()
    saved = os.environ.get("OMP_NUM_THREADS")
    yield
    clear_cache()
    if saved is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = saved


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Names of a plugin module and of a module that raises on import."""
    src = tmp_path / "src"
    src.mkdir()
    tag = uuid.uuid4().hex[:8]
    names = {"plugin": f"stlx_plugin_{tag}", "broken": f"stlx_broken_{tag}"}
    (src / f"{names['plugin']}.py").write_text(PLUGIN_SOURCE)
    (src / f"{names['broken']}.py").write_text(BROKEN_SOURCE)
    monkeypatch.syspath_prepend(str(src))
    yield names
    for name in names.values():
        sys.modules.pop(name, None)


def make_distribution(root, name, version, backends, group=ENTRY_POINT_GROUP):
    """A real ``PathDistribution`` over a ``dist-info`` folder written under ``root``."""
    info = Path(root) / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    lines = [f"[{group}]"] + [f"{key} = {value}" for key, value in backends.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return importlib.metadata.PathDistribution(info)


def install(monkeypatch, *distributions):
    """Make the registry see exactly the entry points of ``distributions``."""
    entry_points = [ep for dist in distributions for ep in dist.entry_points]
    assert all(isinstance(ep, importlib.metadata.EntryPoint) for ep in entry_points)
    monkeypatch.setattr(registry, "_entry_points", lambda: list(entry_points))


@pytest.fixture
def good(tmp_path, monkeypatch, modules):
    """A distribution ``fake-plugin 1.2.3`` registering ``good`` and ``mixed``."""
    dist = make_distribution(
        tmp_path / "meta",
        "fake-plugin",
        "1.2.3",
        {
            "good": f"{modules['plugin']}:GoodBackend",
            "mixed": f"{modules['plugin']}:MixedBackend",
        },
    )
    install(monkeypatch, dist)
    return sys.modules.get(modules["plugin"]) or __import__(modules["plugin"])


# ---------------------------------------------------------------------------
# found


def test_builtin_local_and_python_load_syne_tunes_classes(monkeypatch):
    install(monkeypatch)
    from syne_tune.backend.local_backend import LocalBackend
    from syne_tune.backend.python_backend.python_backend import PythonBackend

    assert load_backend_class("local") is LocalBackend
    assert load_backend_class("python") is PythonBackend


def test_plugin_is_listed_with_its_distribution_and_loads(good, modules):
    listed = available_backends()
    assert listed["good"] == f"fake-plugin 1.2.3 ({modules['plugin']}:GoodBackend)"
    assert load_backend_class("good") is good.GoodBackend


def test_entry_points_of_other_groups_are_ignored(tmp_path, monkeypatch, modules):
    other = make_distribution(
        tmp_path, "other-group", "1.0", {"stray": f"{modules['plugin']}:GoodBackend"},
        group="some.other.group",
    )
    install(monkeypatch, other)
    assert "stray" not in available_backends()
    with pytest.raises(BackendNotFoundError):
        load_backend_class("stray")


def test_empty_metadata_lists_only_builtins(monkeypatch):
    install(monkeypatch)
    assert available_backends() == BUILTINS


# ---------------------------------------------------------------------------
# unknown name


def test_unknown_name_lists_available_names_sorted(good):
    with pytest.raises(BackendNotFoundError) as err:
        load_backend_class("nope")
    message = str(err.value)
    assert "'nope'" in message
    assert "Available: 'good', 'local', 'mixed', 'python'." in message
    assert ENTRY_POINT_GROUP in message


def test_unknown_name_suggests_a_close_one(good):
    with pytest.raises(BackendNotFoundError, match="Did you mean 'good'"):
        load_backend_class("goood")


# ---------------------------------------------------------------------------
# broken plugin


def test_broken_plugin_raises_chained_and_names_its_distribution(
    tmp_path, monkeypatch, modules
):
    broken = make_distribution(
        tmp_path, "broken-plugin", "0.3", {"broken": f"{modules['broken']}:Backend"}
    )
    install(monkeypatch, broken)
    with pytest.raises(BackendLoadError) as err:
        load_backend_class("broken")
    assert isinstance(err.value.__cause__, RuntimeError)
    assert "boom while importing the plugin" in str(err.value.__cause__)
    assert "broken-plugin" in str(err.value)
    assert "'broken'" in str(err.value)


def test_broken_plugin_not_asked_for_does_not_stop_others(
    tmp_path, monkeypatch, modules
):
    good_dist = make_distribution(
        tmp_path / "a", "fake-plugin", "1.0", {"good": f"{modules['plugin']}:GoodBackend"}
    )
    broken = make_distribution(
        tmp_path / "b", "broken-plugin", "0.3", {"broken": f"{modules['broken']}:Backend"}
    )
    install(monkeypatch, broken, good_dist)
    # listing does not import, so a plugin that fails on import is still listed
    assert set(available_backends()) == {"broken", "good", "local", "python"}
    assert load_backend_class("good").__name__ == "GoodBackend"
    assert modules["broken"] not in sys.modules


@pytest.mark.parametrize("value", ["just_a_module", "not a valid value!"])
def test_malformed_entry_point_is_skipped_when_listing_and_raises_when_asked(
    tmp_path, monkeypatch, modules, value
):
    bad = make_distribution(tmp_path, "bad-plugin", "2.0", {"bad": value})
    good_dist = make_distribution(
        tmp_path / "g", "fake-plugin", "1.0", {"good": f"{modules['plugin']}:GoodBackend"}
    )
    install(monkeypatch, bad, good_dist)
    with pytest.warns(BackendRegistryWarning, match="bad-plugin"):
        listed = available_backends()
    assert set(listed) == {"good", "local", "python"}
    with pytest.raises(BackendLoadError, match="bad-plugin") as err:
        load_backend_class("bad")
    assert "module:Class" in str(err.value)


def test_unreadable_distribution_metadata_is_warned_and_skipped(
    tmp_path, monkeypatch, modules
):
    """Real discovery through sys.path: one corrupt distribution hides nothing else."""
    root = tmp_path / "site"
    make_distribution(root, "fake-plugin", "1.0", {"good": f"{modules['plugin']}:GoodBackend"})
    corrupt = make_distribution(root, "corrupt-plugin", "1.0", {})
    (Path(corrupt._path) / "entry_points.txt").write_bytes(b"\xff\xfe[\x00\x81")
    monkeypatch.syspath_prepend(str(root))
    with pytest.warns(BackendRegistryWarning, match="corrupt"):
        listed = available_backends()
    assert listed["good"] == f"fake-plugin 1.0 ({modules['plugin']}:GoodBackend)"


# ---------------------------------------------------------------------------
# duplicates


def test_two_distributions_claiming_a_name_raise_naming_both(
    tmp_path, monkeypatch, modules
):
    first = make_distribution(
        tmp_path / "1", "first-plugin", "1.0", {"dup": f"{modules['plugin']}:GoodBackend"}
    )
    second = make_distribution(
        tmp_path / "2", "second-plugin", "2.0", {"dup": f"{modules['plugin']}:MixedBackend"}
    )
    install(monkeypatch, first, second)
    with pytest.raises(BackendLoadError) as err:
        load_backend_class("dup")
    message = str(err.value)
    assert "first-plugin 1.0" in message and "second-plugin 2.0" in message
    assert "pip uninstall first-plugin" in message
    with pytest.warns(BackendRegistryWarning, match="'dup'"):
        listed = available_backends()
    assert set(listed) == {"local", "python"}


def test_distribution_claiming_a_builtin_name_raises_naming_both(
    tmp_path, monkeypatch, modules
):
    squatter = make_distribution(
        tmp_path, "squatter", "0.1", {"local": f"{modules['plugin']}:GoodBackend"}
    )
    install(monkeypatch, squatter)
    with pytest.raises(BackendLoadError) as err:
        load_backend_class("local")
    assert "built-in (syne_tune.backend.local_backend:LocalBackend)" in str(err.value)
    assert "squatter 0.1" in str(err.value)


def test_same_distribution_seen_twice_is_not_a_conflict(good, tmp_path, monkeypatch, modules):
    dist = make_distribution(
        tmp_path / "twice", "fake-plugin", "1.2.3", {"good": f"{modules['plugin']}:GoodBackend"}
    )
    install(monkeypatch, dist, dist)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "good" in available_backends()
    assert load_backend_class("good") is good.GoodBackend


# ---------------------------------------------------------------------------
# wrong type


@pytest.mark.parametrize("attr", ["NotABackend", "not_a_class"])
def test_object_that_is_not_a_trial_backend_subclass_raises(
    tmp_path, monkeypatch, modules, attr
):
    dist = make_distribution(
        tmp_path, "wrong-plugin", "1.0", {"wrong": f"{modules['plugin']}:{attr}"}
    )
    install(monkeypatch, dist)
    with pytest.raises(BackendLoadError, match="not a subclass of .*TrialBackend") as err:
        load_backend_class("wrong")
    assert "wrong-plugin" in str(err.value)


# ---------------------------------------------------------------------------
# cache


def test_classes_are_cached_until_clear_cache(good, monkeypatch):
    first = load_backend_class("good")
    install(monkeypatch)  # the plugin is gone from metadata now
    assert load_backend_class("good") is first
    clear_cache()
    with pytest.raises(BackendNotFoundError):
        load_backend_class("good")


def test_failures_are_not_cached(tmp_path, monkeypatch, modules):
    install(monkeypatch)
    with pytest.raises(BackendNotFoundError):
        load_backend_class("good")
    dist = make_distribution(
        tmp_path, "fake-plugin", "1.0", {"good": f"{modules['plugin']}:GoodBackend"}
    )
    install(monkeypatch, dist)
    assert load_backend_class("good").__name__ == "GoodBackend"


# ---------------------------------------------------------------------------
# listing imports nothing


def test_listing_imports_no_backend_module(tmp_path):
    """In a fresh interpreter: listing finds a plugin without importing it,
    imports nothing of syne-tune and leaves OMP_NUM_THREADS unset."""
    root = tmp_path / "site"
    marker = tmp_path / "imported.txt"
    make_distribution(root, "sentinel-plugin", "1.0", {"sentinel": "stlx_sentinel:Backend"})
    (root / "stlx_sentinel.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nBackend = None\n"
    )
    script = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(root)!r})
        from syne_tune_localx.registry import available_backends
        names = available_backends()
        print(json.dumps({{
            "names": sorted(names),
            "modules": sorted(sys.modules),
            "omp": os.environ.get("OMP_NUM_THREADS"),
        }}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert {"sentinel", "local", "python"} <= set(result["names"])
    syne_tune_modules = [m for m in result["modules"] if m.split(".")[0] == "syne_tune"]
    assert syne_tune_modules == []
    assert "syne_tune_localx.backend" not in result["modules"]
    assert "stlx_sentinel" not in result["modules"]
    assert not marker.exists()
    assert result["omp"] is None


# ---------------------------------------------------------------------------
# options


def test_backend_options_walks_forwarding_mixins(good):
    options = backend_options(good.MixedBackend)
    assert set(options) == {
        "entry_point", "alpha", "beta", "delete_checkpoints_twice",
        "delete_checkpoints", "pass_args_as_json",
    }
    required = {k for k, p in options.items() if p.default is inspect.Parameter.empty}
    assert required == {"entry_point", "beta"}


def test_backend_options_stop_at_a_constructor_without_kwargs():
    from syne_tune.backend.local_backend import LocalBackend

    assert set(backend_options(LocalBackend)) == {
        "entry_point", "binary", "delete_checkpoints", "pass_args_as_json",
        "rotate_gpus", "num_gpus_per_trial", "gpus_to_use",
    }


def test_make_backend_from_dict(good):
    backend = make_backend({"name": "good", "options": {"entry_point": "train.py", "speed": 3}})
    assert type(backend) is good.GoodBackend
    assert backend.entry_point == "train.py"  # relative to the working folder: unchanged
    assert backend.speed == 3


def test_make_backend_passes_options_through_mixins(good):
    backend = make_backend(
        {"backend": {"name": "mixed", "options": {"entry_point": "t.py", "alpha": 2, "beta": 3,
                                                   "delete_checkpoints": True}}}
    )
    assert (backend.alpha, backend.beta, backend.delete_checkpoints) == (2, 3, True)


def test_make_backend_builtin_local(tmp_path, monkeypatch):
    install(monkeypatch)
    from syne_tune.backend.local_backend import LocalBackend

    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    backend = make_backend({"name": "local", "options": {"entry_point": str(script)}})
    assert isinstance(backend, LocalBackend)
    assert backend.entry_point == str(script)


def test_make_backend_from_yaml_resolves_entry_point_against_the_file(good, tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    spec_file = folder / "experiment.yaml"
    spec_file.write_text(
        textwrap.dedent(
            """
            scheduler: fifo  # other sections of an experiment config are fine
            backend:
              name: good
              options:
                entry_point: scripts/train.py
                speed: 7
            """
        )
    )
    backend = make_backend(spec_file)
    assert backend.entry_point == str(folder / "scripts" / "train.py")
    assert backend.speed == 7
    # a str path works the same, and an absolute entry_point stays as it is
    spec_file.write_text(f"name: good\noptions:\n  entry_point: {tmp_path / 'abs.py'}\n")
    assert make_backend(str(spec_file)).entry_point == str(tmp_path / "abs.py")


def test_make_backend_from_json_resolves_entry_point_against_the_file(
    good, tmp_path, monkeypatch
):
    folder = tmp_path / "configs"
    folder.mkdir()
    spec_file = folder / "backend.json"
    spec_file.write_text(json.dumps({"name": "good", "options": {"entry_point": "train.py"}}))
    monkeypatch.chdir(tmp_path)
    backend = make_backend(Path("configs") / "backend.json")
    assert backend.entry_point == str(folder / "train.py")
    assert backend.speed == 1


def test_unknown_option_lists_accepted_ones(good):
    with pytest.raises(ConfigurationError) as err:
        make_backend({"name": "good", "options": {"entry_point": "t.py", "sped": 2}})
    message = str(err.value)
    assert "'sped'" in message
    assert (
        "Accepted options: 'delete_checkpoints', 'entry_point', 'pass_args_as_json', 'speed'."
        in message
    )
    assert "'sped' -> 'speed'?" in message


def test_unknown_option_in_file_names_the_file(good, tmp_path):
    spec_file = tmp_path / "b.yaml"
    spec_file.write_text("name: good\noptions:\n  entry_point: t.py\n  colour: red\n")
    with pytest.raises(ConfigurationError, match="'colour'") as err:
        make_backend(spec_file)
    assert str(spec_file) in str(err.value)


def test_missing_required_option_is_named(good):
    with pytest.raises(ConfigurationError, match="needs the option\\(s\\) 'beta', 'entry_point'"):
        make_backend({"name": "mixed", "options": {"alpha": 1}})


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"options": {"entry_point": "t.py"}}, "needs a 'name'"),
        ({"name": "", "options": {}}, "needs a 'name'"),
        ({"name": 3}, "needs a 'name'"),
        ({"name": "good", "options": ["entry_point", "t.py"]}, "'options' in .* must be a mapping"),
        ({"name": "good", "options": "entry_point=t.py"}, "'options' in .* must be a mapping"),
        ({"name": "good", "option": {}}, "Unknown key\\(s\\) 'option'.*allowed keys are 'name', 'options'"),
        ({"backend": "good"}, "must be a mapping with keys 'name'"),
        ({"name": "good", "options": {1: "x"}}, "Option names .* must be strings"),
    ],
)
def test_malformed_specs_are_reported(good, spec, expected):
    with pytest.raises(ConfigurationError, match=expected):
        make_backend(spec)


def test_spec_of_wrong_type_is_reported():
    with pytest.raises(ConfigurationError, match="dictionary or the path"):
        make_backend(["good"])


def test_empty_options_may_be_left_out(tmp_path, monkeypatch, modules):
    dist = make_distribution(
        tmp_path, "fake-plugin", "1.0", {"noargs": f"{modules['plugin']}:GoodBackend"}
    )
    install(monkeypatch, dist)
    # GoodBackend needs entry_point, so both ways of leaving options out report it
    for spec in ({"name": "noargs"}, {"name": "noargs", "options": None}):
        with pytest.raises(ConfigurationError, match="'entry_point'"):
            make_backend(spec)


def test_yaml_error_names_file_and_line(good, tmp_path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("name: good\noptions:\n  entry_point: [unclosed\n  speed: 2\n")
    with pytest.raises(ConfigurationError) as err:
        make_backend(spec_file)
    message = str(err.value)
    assert str(spec_file) in message
    assert "line 4" in message  # the list is found unclosed on line 4
    assert err.value.__cause__ is not None


def test_json_error_names_file_and_line(good, tmp_path):
    spec_file = tmp_path / "bad.json"
    spec_file.write_text('{\n  "name": "good",\n  "options": {,}\n}\n')
    with pytest.raises(ConfigurationError, match="line 3, column") as err:
        make_backend(spec_file)
    assert str(spec_file) in str(err.value)


@pytest.mark.parametrize(
    "filename, content, expected",
    [
        ("empty.yaml", "", "must be a mapping"),
        ("list.yml", "- name: good\n", "must be a mapping"),
        ("spec.toml", "name = 'good'\n", "suffix '.toml'"),
    ],
)
def test_unusable_files_are_reported(good, tmp_path, filename, content, expected):
    spec_file = tmp_path / filename
    spec_file.write_text(content)
    with pytest.raises(ConfigurationError, match=expected):
        make_backend(spec_file)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigurationError, match="Cannot read the backend spec file"):
        make_backend(tmp_path / "absent.yaml")


def test_unknown_backend_in_spec_lists_available(good):
    with pytest.raises(BackendNotFoundError, match="Available: 'good', 'local', 'mixed', 'python'"):
        make_backend({"name": "gpu-cluster"})


def test_make_backend_from_a_whole_experiment_file(good, tmp_path):
    # an experiment file has its own `name` next to `backend:`; the backend spec wins
    (tmp_path / "train.py").write_text("")
    spec = tmp_path / "experiment.yaml"
    spec.write_text(
        "name: my-experiment\n"
        "metric: loss\n"
        "backend:\n  name: good\n  options:\n    entry_point: train.py\n"
    )
    backend = make_backend(spec)
    assert type(backend) is good.GoodBackend
    assert backend.entry_point == str(tmp_path / "train.py")
