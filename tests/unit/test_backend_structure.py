"""LocalXBackend's shape: mixin order, the seed API, hook chains."""

import inspect
import os
import subprocess
import sys

import pytest
from syne_tune.backend.local_backend import LocalBackend
from syne_tune.backend.trial_backend import TrialBackend

from syne_tune_localx import LocalXBackend
from syne_tune_localx.arguments import JsonArgsMixin
from syne_tune_localx.checkpoints import CheckpointMixin
from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.gpu import GpuRotationMixin
from syne_tune_localx.hooks import BackendHooks


def test_mro_mixins_left_host_right():
    mro = LocalXBackend.__mro__
    assert mro[:7] == (
        LocalXBackend, GpuRotationMixin, JsonArgsMixin, CheckpointMixin, BackendHooks,
        TrialBackend, object,
    )


HOST_PUBLIC = {"trial_path", "trial_visible_path", "trial_process_ids", "delete_checkpoints",
               "pass_args_as_json"}


@pytest.mark.parametrize("mixin", [GpuRotationMixin, JsonArgsMixin, CheckpointMixin])
def test_mixins_use_only_their_own_state_hooks_and_host_attributes(mixin):
    """A mixin reads or calls nothing of another mixin: every ``self.<name>`` in its
    class is its own (defined by the mixin or prefixed by its concern), a hook of
    BackendHooks, or a public attribute of the host."""
    import re

    source = inspect.getsource(mixin)
    used = set(re.findall(r"self\.(\w+)", source))
    own = {name for name in vars(mixin)} | set(re.findall(r"self\.(\w+) *[:=][^=]", source))
    hooks = {name for name in vars(BackendHooks) if not name.startswith("__")}
    others = [m for m in (GpuRotationMixin, JsonArgsMixin, CheckpointMixin) if m is not mixin]
    foreign = used - own - hooks - HOST_PUBLIC - {"__class__", "__dict__"}
    assert not foreign, f"{mixin.__name__} uses {sorted(foreign)}"
    for other in others:
        assert not (used & (set(vars(other)) - hooks)), (mixin, other)


def test_constructor_accepts_every_seed_argument_plus_binary():
    seed = inspect.signature(LocalBackend.__init__).parameters
    ours = inspect.signature(LocalXBackend.__init__).parameters
    for name, param in seed.items():
        assert name in ours, name
        assert ours[name].default == param.default, name
    assert "binary" in ours


def test_public_methods_of_the_seed_exist():
    for name in ["trial_path", "checkpoint_trial_path", "copy_checkpoint", "delete_checkpoint",
                 "busy_trial_ids", "stdout", "stderr", "set_path", "entrypoint_path",
                 "set_entrypoint", "start_trial", "pause_trial", "resume_trial", "stop_trial",
                 "stop_all", "fetch_status_results", "new_trial_id"]:
        assert callable(getattr(LocalXBackend, name)), name
    # what TrialBackend leaves abstract is implemented
    for name in ["copy_checkpoint", "delete_checkpoint", "_resume_trial", "_pause_trial",
                 "_stop_trial", "_schedule", "_all_trial_results", "busy_trial_ids", "stdout",
                 "stderr", "entrypoint_path", "set_entrypoint"]:
        assert getattr(LocalXBackend, name) is not getattr(TrialBackend, name), name


def test_positional_order_matches_the_seed(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    backend = LocalXBackend(str(script), None, True, True, False, 0, None)
    assert backend.delete_checkpoints and backend.pass_args_as_json
    assert backend.rotate_gpus is False and backend.num_gpus_per_trial == 0
    assert backend.binary == [sys.executable]


def test_binary_as_string_or_list(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    b = LocalXBackend(str(script), binary=f"{sys.executable} -u -X dev")
    assert b.binary == [sys.executable, "-u", "-X", "dev"]
    b = LocalXBackend(str(script), binary=[sys.executable, "-u"])
    assert b.binary == [sys.executable, "-u"]


@pytest.mark.parametrize("binary", ["no-such-program-xyz", "", []])
def test_bad_binary(tmp_path, binary):
    script = tmp_path / "train.py"
    script.write_text("")
    with pytest.raises(ConfigurationError, match="binary"):
        LocalXBackend(str(script), binary=binary)


def test_missing_entry_point_names_the_path(tmp_path):
    with pytest.raises(ConfigurationError, match="nope.py"):
        LocalXBackend(str(tmp_path / "nope.py"))


@pytest.mark.parametrize("kwargs", [{"stop_grace_period": -1}, {"stop_grace_period": float("nan")},
                                    {"stop_grace_period": float("inf")}, {"threads_per_trial": 0},
                                    {"threads_per_trial": True}])
def test_bad_options(tmp_path, kwargs):
    script = tmp_path / "train.py"
    script.write_text("")
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        LocalXBackend(str(script), **kwargs)


def test_paths_follow_set_path(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    backend = LocalXBackend(str(script))
    backend.set_path(str(tmp_path / "res"), tuner_name="x")
    assert backend.trial_path(4) == tmp_path / "res" / "4"
    assert backend.checkpoint_trial_path(4) == tmp_path / "res" / "4" / "checkpoints"
    assert backend.entrypoint_path() == script
    other = tmp_path / "other.py"
    other.write_text("")
    backend.set_entrypoint(str(other))
    assert backend.entrypoint_path() == other


def test_importing_the_package_changes_no_environment_variable():
    code = (
        "import os; before = dict(os.environ)\n"
        "import syne_tune_localx\n"
        "from syne_tune_localx import LocalXBackend\n"
        "import syne_tune_localx.backend, syne_tune_localx.registry\n"
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("name", ["delete_checkpoints", "pass_args_as_json", "separate_working_dirs"])
@pytest.mark.parametrize("value", ["false", "no", 0, None])
def test_boolean_options_refuse_non_booleans(tmp_path, name, value):
    # delete_checkpoints: "false" from a YAML file once meant True
    script = tmp_path / "train.py"
    script.write_text("")
    with pytest.raises(ConfigurationError, match=f"{name}=.*must be True or False"):
        LocalXBackend(str(script), **{name: value})


def test_unknown_option_lists_the_accepted_ones(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    with pytest.raises(ConfigurationError, match="'grace_period'.*accepted options:.*stop_grace_period"):
        LocalXBackend(str(script), grace_period=3)


@pytest.mark.parametrize("entry_point, binary, expected", [
    (None, None, "entry_point=None must be the path"),
    ("train.py", "python3 'x", "cannot be split"),
    ("train.py", 42, "must be a string or a list"),
])
def test_malformed_entry_point_or_binary(tmp_path, monkeypatch, entry_point, binary, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("")
    with pytest.raises(ConfigurationError, match=expected):
        LocalXBackend(entry_point, binary=binary)


def test_unknown_option_message_names_only_the_unknown_one(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    with pytest.raises(ConfigurationError) as err:
        LocalXBackend(str(script), stop_grace=3)
    assert "unknown option(s) ['stop_grace']" in str(err.value)
