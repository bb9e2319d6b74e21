"""How a trial's configuration reaches its script: :class:`JsonArgsMixin`.

The encoding is documented in :mod:`syne_tune_localx.trial`, which also holds
:func:`~syne_tune_localx.trial.read_config` for the script side.
"""

import json
from typing import Any

from syne_tune_localx.errors import ConfigurationError
from syne_tune_localx.hooks import BackendHooks
from syne_tune_localx.trial import CONFIG_JSON_ARG

CONFIG_FILE_NAME = "config.json"
# Linux's MAX_ARG_STRLEN: the longest single argument execve accepts
MAX_ARGUMENT_BYTES = 128 * 1024


def _plain(value: Any) -> Any:
    """numpy scalars (what config spaces sample) to Python ones."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    return value


def encode_cli_value(key: str, value: Any) -> str | None:
    """
    :param key: Name of the hyperparameter (for error messages)
    :param value: Its value
    :return: The text after ``--key=``; ``None`` means the flag is left out
    """
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if len(value.encode()) + len(key) + 3 >= MAX_ARGUMENT_BYTES:
            raise ConfigurationError(
                f"config[{key!r}] is {len(value.encode())} bytes long, more than one "
                f"command-line argument may hold ({MAX_ARGUMENT_BYTES} on Linux); pass "
                f"pass_args_as_json=True to LocalXBackend"
            )
        if "\x00" in value:
            raise ConfigurationError(
                f"config[{key!r}] contains a NUL character, which a command line "
                f"cannot carry; pass pass_args_as_json=True to LocalXBackend"
            )
        return value
    raise ConfigurationError(
        f"config[{key!r}] = {value!r} is a {type(value).__name__}, which the "
        f"command line cannot carry; pass pass_args_as_json=True to LocalXBackend "
        f"and read it with syne_tune_localx.trial.read_config"
    )


def check_cli_key(key: Any) -> str:
    if not isinstance(key, str) or not key or key.startswith("-") or "=" in key or any(
        c.isspace() or c == "\x00" for c in key
    ):
        raise ConfigurationError(
            f"config key {key!r} cannot be a command-line flag: it must be a non-empty "
            f"string without '=', whitespace or a leading '-'; rename it in the config "
            f"space or pass pass_args_as_json=True"
        )
    return key


def config_to_json(config: dict[str, Any]) -> str:
    """
    :param config: Configuration of a trial
    :return: JSON text; raises :class:`ConfigurationError` naming the first key
        whose value JSON cannot hold
    """
    plain = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise ConfigurationError(
                f"config key {key!r} is a {type(key).__name__}; JSON needs string keys, "
                f"rename it in the config space"
            )
        try:
            json.dumps(value, default=_json_default, allow_nan=True)
        except (TypeError, ValueError) as err:
            raise ConfigurationError(
                f"config[{key!r}] = {value!r} cannot be written as JSON ({err}); use "
                f"str, int, float, bool, None, lists or dicts of them"
            ) from err
        plain[key] = value
    return json.dumps(plain, default=_json_default, allow_nan=True, indent=1)


def _json_default(value: Any) -> Any:
    converted = _plain(value)
    if converted is value and hasattr(value, "tolist"):
        converted = value.tolist()
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return converted


class JsonArgsMixin(BackendHooks):
    """Turns a trial's configuration into arguments: one ``--key=value`` per key,
    or, with ``pass_args_as_json=True``, a JSON file and one argument naming it.

    ``pass_args_as_json`` stays owned by ``TrialBackend.__init__``; this mixin
    only reads it. The configuration is always saved as ``config.json`` in the
    trial folder, as syne-tune's ``LocalBackend`` does.
    """

    def _config_arguments(self, trial_id: int, config: dict[str, Any]) -> list[str]:
        if self.pass_args_as_json:
            path = self.trial_visible_path(trial_id) / CONFIG_FILE_NAME
            return [f"--{CONFIG_JSON_ARG}={path}"]
        argv = []
        for key, value in config.items():
            text = encode_cli_value(check_cli_key(key), value)
            if text is not None:
                argv.append(f"--{key}={text}")
        return argv

    def _trial_files(self, trial_id: int, config: dict[str, Any]) -> dict[str, str]:
        files = super()._trial_files(trial_id, config)
        files[CONFIG_FILE_NAME] = config_to_json(config)
        return files
