"""Experiment files: one YAML or JSON file describing a whole HPO experiment.

The file is read by :func:`load_experiment_file` (or a dictionary by
:func:`parse_experiment`), checked completely before anything runs, and turned
into the objects a :class:`~syne_tune.Tuner` needs by :meth:`Experiment.build`.
The format, key by key (only ``backend``, ``config_space``, ``metric`` and
``stop`` are required)::

    name: digits-asha          # tuner name; a time stamp is appended
    results_dir: results       # default: $SYNETUNE_FOLDER, else ~/syne-tune
    backend:                   # any backend of `syne-tune-localx backends`
      name: localx
      options: {entry_point: train.py, num_gpus_per_trial: 0}
    config_space:
      lr: loguniform(1e-4, 1e-1)                       # call form
      momentum: {type: uniform, lower: 0.8, upper: 0.99}  # mapping form
      epochs: 20                                       # a constant
    metric: accuracy
    mode: max                  # or min (the default)
    scheduler:                 # or just a name: `scheduler: RandomSearch`
      name: ASHA
      options: {time_attr: epoch, max_t: 20}
    stop: {max_wallclock_time: 60}
    n_workers: 2
    tuner: {sleep_time: 0.5, max_failures: 1}

Relative ``backend.options.entry_point`` and ``results_dir`` are taken
relative to the file's folder. Every error is a
:class:`~syne_tune_localx.errors.ConfigurationError` naming the file, the line
and the key, what is allowed, and how to fix it.
"""

from __future__ import annotations

import ast
import copy
import difflib
import functools
import inspect
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syne_tune_localx.errors import ConfigurationError

__all__ = [
    "DOMAIN_NAMES",
    "Experiment",
    "apply_overrides",
    "available_schedulers",
    "load_experiment_file",
    "parse_domain",
    "parse_experiment",
    "read_document",
]

TOP_LEVEL_KEYS = {
    "name": "tuner name; results go to <results_dir>/<name>-<time stamp>",
    "results_dir": "folder that receives the results folder",
    "backend": "{name: ..., options: {...}}",
    "config_space": "hyperparameter -> domain or constant",
    "metric": "the metric to optimise, as the script reports it",
    "mode": "min or max",
    "scheduler": "a name, or {name: ..., options: {...}}",
    "stop": "stopping criterion, e.g. {max_wallclock_time: 60}",
    "n_workers": "number of trials running at the same time",
    "tuner": "further keyword arguments of syne_tune.Tuner",
}
REQUIRED_KEYS = ("backend", "config_space", "metric", "stop")
# names used elsewhere (syne-tune's arguments, other launchers) for top-level keys
_KEY_SYNONYMS = {
    "stop_criterion": "stop",
    "stopping_criterion": "stop",
    "tuner_name": "name",
    "search_space": "config_space",
    "workers": "n_workers",
    "results_folder": "results_dir",
    "trial_backend": "backend",
}
MODES = ("min", "max")

DOMAIN_NAMES = (
    "uniform",
    "loguniform",
    "reverseloguniform",
    "quniform",
    "qloguniform",
    "randint",
    "lograndint",
    "qrandint",
    "qlograndint",
    "choice",
    "ordinal",
    "logordinal",
    "finrange",
    "logfinrange",
)
"""Domain constructors of ``syne_tune.config_space`` usable in a config space."""
CONSTANT = "constant"
_CALL_START = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_CALL_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.DOTALL)

# Tuner arguments the experiment fills itself; the others may go under `tuner:`
_TUNER_FILLED = {
    "trial_backend": "backend",
    "scheduler": "scheduler",
    "stop_criterion": "stop",
    "n_workers": "n_workers",
    "tuner_name": "name",
    "trial_backend_path": "results_dir",
    "callbacks": None,
    "output_logger": None,
    "metadata": None,
}
DEFAULT_SLEEP_TIME = 0.5
"""Tuner's ``sleep_time`` unless the file sets one (syne-tune's default is 5 s,
long for trials of seconds)."""

# scheduler arguments the experiment fills from top-level keys
_SCHEDULER_FILLED = {
    "config_space": "config_space",
    "metric": "metric",
    "metrics": "metric",
    "do_minimize": "mode",
    "mode": "mode",
}
_EXTRA_SCHEDULERS = {
    "PopulationBasedTraining": "syne_tune.optimizer.schedulers.pbt:PopulationBasedTraining",
}
_SCHEDULER_ALIASES = {"PBT": "PopulationBasedTraining"}


# --------------------------------------------------------------------------
# reading files


@functools.cache
def _yaml_loader():
    """A safe YAML loader that reads ``1e-4`` as a float (YAML 1.2 does; PyYAML's
    1.1 rules read it as a string) and rejects duplicate keys."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$""",
        ),
        list("-+0123456789."),
    )

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
    )
    return Loader


def parse_yaml_value(text: str) -> Any:
    """Read one value as YAML (the right side of ``--set key=value``).

    :param text: e.g. ``4``, ``1e-3``, ``[a, b]``, ``{max_wallclock_time: 30}``
    :return: The value; text that is not valid YAML is returned as the string
    """
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError:
        return text


@dataclass
class _Source:
    """Where a document came from, for error messages."""

    label: str  # e.g. "experiment.yaml" or "the experiment dictionary"
    text: str | None = None
    lines: dict[tuple, int] | None = None  # key path -> line (1-based)
    overridden: dict[tuple, str] = field(default_factory=dict)  # key path -> --set text

    def line_of(self, path: tuple) -> int | None:
        if self.text is None:
            return None
        if self.lines is None:
            self.lines = _key_lines(self.text)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def where(self, path: tuple) -> str:
        dotted = ".".join(str(p) for p in path)
        for prefix, option in self.overridden.items():
            if path[: len(prefix)] == prefix:
                return f"--set {option} (key {dotted})" if dotted else f"--set {option}"
        line = self.line_of(path) if path else None
        place = f"{self.label}, line {line}" if line else self.label
        below = [o for p, o in self.overridden.items() if p[: len(path)] == path and path]
        extra = f", with --set {', --set '.join(below)}" if below else ""
        return f"{place} (key {dotted}{extra})" if dotted else place


def _key_lines(text: str) -> dict[tuple, int]:
    """Line of every mapping key, by key path, from the YAML (or JSON) text."""
    import yaml

    try:
        root = yaml.compose(text, Loader=_yaml_loader())
    except yaml.YAMLError:
        return {}
    lines: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None:
                    continue
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return lines


def read_document(path: str | os.PathLike) -> tuple[Any, str]:
    """Read a YAML (``.yaml``, ``.yml``) or JSON (``.json``) file.

    :param path: The file
    :return: ``(document, text)``
    :raises ConfigurationError: The file cannot be read or parsed; the message
        gives the line and column
    """
    import yaml

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigurationError(
            f"Cannot tell the format of the experiment file {path}: its suffix "
            f"{path.suffix!r} is none of .yaml, .yml, .json. Rename the file."
        )
    if not path.is_file():
        raise ConfigurationError(
            f"The experiment file {path} does not exist (looked in {path.absolute()}). "
            "Check the path; run `syne-tune-localx run` without a file for the packaged demo."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigurationError(f"{path} is not UTF-8 text ({err}). Save it as UTF-8.") from err
    except OSError as err:
        raise ConfigurationError(f"Cannot read {path}: {err.strerror or err}.") from err
    if suffix == ".json":
        try:
            return json.loads(text), text
        except json.JSONDecodeError as err:
            raise ConfigurationError(
                f"Invalid JSON in {path}, line {err.lineno}, column {err.colno}: {err.msg}. "
                f"The line reads: {_line_text(text, err.lineno)!r}. Fix the file."
            ) from err
    try:
        return yaml.load(text, Loader=_yaml_loader()), text
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        place = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        detail = f"{problem} ({context})" if context else problem
        reads = f" The line reads: {_line_text(text, mark.line + 1)!r}." if mark else ""
        raise ConfigurationError(
            f"Invalid YAML in {path}{place}: {detail}.{reads} Fix the file "
            "(indent nested keys with spaces, quote values that contain ': ' or '#')."
        ) from err


def _line_text(text: str, lineno: int) -> str:
    lines = text.splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def apply_overrides(document: dict, overrides: Sequence[str], source: _Source | None = None) -> dict:
    """Apply ``key=value`` overrides to a document (a copy is returned).

    :param document: The experiment document
    :param overrides: Items like ``n_workers=4``, ``stop.max_wallclock_time=30``
        or ``config_space.lr=loguniform(1e-5, 1e-2)``; the value is read as YAML
    :param source: Records which keys were overridden, for error messages
    :return: The new document
    """
    document = copy.deepcopy(document)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(
                f"--set {item!r} is not of the form KEY=VALUE; write e.g. "
                "--set n_workers=4 or --set stop.max_wallclock_time=30."
            )
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigurationError(
                f"--set {item!r}: the key {key!r} has an empty part; keys are dotted "
                "paths like stop.max_wallclock_time."
            )
        if parts[0] not in TOP_LEVEL_KEYS:
            raise ConfigurationError(
                f"--set {item!r}: unknown top-level key {parts[0]!r}.{_did_you_mean(parts[0], TOP_LEVEL_KEYS)} "
                f"Allowed: {_names(TOP_LEVEL_KEYS)}."
            )
        node = document
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                if parts[0] == "scheduler" and i == 0 and isinstance(child, str):
                    # `scheduler: ASHA` plus --set scheduler.options.x=1
                    child = node[part] = {"name": child}
                else:
                    raise ConfigurationError(
                        f"--set {item!r}: {'.'.join(parts[: i + 1])} is {child!r}, not a "
                        "mapping, so it has no key "
                        f"{parts[i + 1]!r}. Set {'.'.join(parts[: i + 1])} itself instead."
                    )
            node = child
        node[parts[-1]] = parse_yaml_value(text)
        if source is not None:
            source.overridden[tuple(parts)] = item
    return document


# --------------------------------------------------------------------------
# domains


def _domain_functions() -> dict[str, Any]:
    import syne_tune.config_space as cs

    return {name: getattr(cs, name) for name in DOMAIN_NAMES if hasattr(cs, name)}


def _domain_help() -> str:
    return (
        "Write a domain as `name(args)`, e.g. `loguniform(1e-4, 1e-1)`, "
        "`randint(1, 8)`, `choice(['relu', 'tanh'])`, or as a mapping, e.g. "
        "`{type: loguniform, lower: 1e-4, upper: 1e-1}`"
    )


def parse_domain(value: Any, where: str = "config_space") -> Any:
    """Turn one config-space entry of an experiment file into a syne-tune domain.

    * ``"loguniform(1e-4, 1e-1)"`` -- the call form: a domain name of
      :data:`DOMAIN_NAMES` with literal arguments (numbers, strings, lists),
      positional or by keyword.
    * ``{"type": "loguniform", "lower": 1e-4, "upper": 1e-1}`` -- the mapping
      form, arguments by keyword (``domain`` is accepted for ``type``, as in
      ``examples/digits_asha.yaml``).
    * ``{"type": "constant", "value": ...}`` -- a constant that would otherwise
      be read as a domain (a string like ``"f(x)"``, a mapping with a ``type``).
    * Anything else is a constant, passed to every trial unchanged.

    :param value: The entry as read from the file
    :param where: Where it is, for error messages
    :return: A :class:`syne_tune.config_space.Domain` or the constant
    :raises ConfigurationError: Unknown domain name, wrong or missing
        arguments, or arguments the domain rejects
    """
    if isinstance(value, str):
        match = _CALL_FORM.match(value)
        if match is None:
            start = _CALL_START.match(value)
            if start is not None and start.group(1) in DOMAIN_NAMES:
                raise ConfigurationError(
                    f"{where}: {value!r} starts like a domain but does not end with ')'. "
                    f"{_domain_help()}."
                )
            return value
        name = match.group(1)
        args, kwargs = _call_arguments(match.group(2), value, where)
        return _make_domain(name, args, kwargs, where, shown=value)
    if isinstance(value, Mapping) and ("type" in value or "domain" in value):
        if "type" in value and "domain" in value:
            raise ConfigurationError(
                f"{where}: give the domain name once, as 'type' (or its synonym 'domain'), "
                f"got both in {dict(value)!r}."
            )
        key = "type" if "type" in value else "domain"
        name = value[key]
        kwargs = {k: v for k, v in value.items() if k != key}
        if name == CONSTANT:
            if set(kwargs) != {"value"}:
                raise ConfigurationError(
                    f"{where}: a constant is written {{type: constant, value: ...}}, "
                    f"got the keys {_names(value)}."
                )
            return kwargs["value"]
        if not isinstance(name, str):
            raise ConfigurationError(
                f"{where}: 'type' must be a domain name, got {name!r}. "
                f"Available: {_names(_domain_functions())}, or 'constant'."
            )
        bad = [k for k in kwargs if not isinstance(k, str)]
        if bad:
            raise ConfigurationError(f"{where}: argument names must be strings, got {bad!r}.")
        return _make_domain(name, [], kwargs, where, shown=None)
    return value


def _call_arguments(text: str, whole: str, where: str) -> tuple[list, dict]:
    try:
        call = ast.parse(f"_({text})", mode="eval").body
    except SyntaxError as err:
        raise ConfigurationError(
            f"{where}: cannot read the arguments of {whole!r} ({err.msg}). "
            f"{_domain_help()}."
        ) from err
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (ValueError, TypeError, SyntaxError) as err:
        raise ConfigurationError(
            f"{where}: the arguments of {whole!r} must be literals (numbers, quoted "
            f"strings, lists, True/False/None). {_domain_help()}."
        ) from err
    if any(k is None for k in kwargs):
        raise ConfigurationError(f"{where}: **arguments are not allowed in {whole!r}.")
    return args, kwargs


def _make_domain(name: str, args: list, kwargs: dict, where: str, shown: str | None) -> Any:
    functions = _domain_functions()
    function = functions.get(name)
    if function is None:
        raise ConfigurationError(
            f"{where}: unknown domain {name!r}.{_did_you_mean(name, functions)} Available "
            f"domains: {_names(functions)} (and 'constant' in the mapping form). "
            f"{_domain_help()}. To pass the text {shown or name!r} unchanged, write "
            "{type: constant, value: ...}."
        )
    signature = inspect.signature(function)
    params = signature.parameters
    shown = shown or f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ConfigurationError(
            f"{where}: {name} takes no argument {', '.join(map(repr, unknown))}; its "
            f"arguments are {_signature_text(signature)}."
        )
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        raise ConfigurationError(
            f"{where}: {shown} does not fit {name}{_signature_text(signature)} ({err}). "
            f"{_domain_help()}."
        ) from err
    problem = _domain_problem(name, dict(bound.arguments))
    if problem:
        raise ConfigurationError(f"{where}: {shown} is not a valid domain: {problem}.")
    try:
        return function(*bound.args, **bound.kwargs)
    except Exception as err:
        reason = str(err) or type(err).__name__
        raise ConfigurationError(
            f"{where}: {shown} is not a valid domain: {reason}. Arguments of {name}: "
            f"{_signature_text(signature)}."
        ) from err


def _signature_text(signature: inspect.Signature) -> str:
    return "(" + ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in signature.parameters.values()
    ) + ")"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _domain_problem(name: str, arguments: dict) -> str | None:
    """What syne-tune would accept silently or reject with a bare assertion."""
    if "categories" in arguments:
        categories = arguments["categories"]
        if not isinstance(categories, (list, tuple)) or not categories:
            return "categories must be a non-empty list, e.g. ['a', 'b']"
        if name in ("logordinal",) and not all(_is_number(c) and c > 0 for c in categories):
            return "logordinal needs positive numbers"
        return None
    lower, upper = arguments.get("lower"), arguments.get("upper")
    for key in ("lower", "upper", "q", "size"):
        if key in arguments and not _is_number(arguments[key]):
            return f"{key} must be a number, got {arguments[key]!r}"
    if name.endswith("randint") or name == "qrandint":
        for key in ("lower", "upper"):
            if isinstance(arguments[key], float) and not arguments[key].is_integer():
                return f"{key} of an integer domain must be a whole number, got {arguments[key]!r}"
    if lower is not None and upper is not None:
        if lower > upper or (lower == upper and not name.endswith("finrange")):
            return f"lower ({lower}) must be smaller than upper ({upper})"
        if "log" in name and lower <= 0:
            return f"a log-scaled domain needs lower > 0, got {lower}"
    if "size" in arguments and (not float(arguments["size"]).is_integer() or arguments["size"] < 1):
        return f"size must be a whole number >= 1, got {arguments['size']!r}"
    if "q" in arguments and arguments["q"] <= 0:
        return f"q must be positive, got {arguments['q']!r}"
    return None


# --------------------------------------------------------------------------
# schedulers


def available_schedulers() -> dict[str, str]:
    """Scheduler names an experiment file may use.

    :return: Name -> ``"module:Class"``: every scheduler class defined in
        ``syne_tune.optimizer.baselines``, plus ``PopulationBasedTraining``
        (also accepted as ``PBT``)
    """
    from syne_tune.optimizer import baselines
    from syne_tune.optimizer.scheduler import TrialScheduler

    found = {
        name: f"{obj.__module__}:{obj.__qualname__}"
        for name, obj in vars(baselines).items()
        if isinstance(obj, type)
        and issubclass(obj, TrialScheduler)
        and obj.__module__ == baselines.__name__
    }
    found.update(_EXTRA_SCHEDULERS)
    return dict(sorted(found.items()))


def _load_scheduler_class(name: Any, where: str) -> type:
    import importlib

    schedulers = available_schedulers()
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"{where}: the scheduler must be named, got {name!r}. Available: "
            f"{_names(schedulers)}."
        )
    resolved = _SCHEDULER_ALIASES.get(name, name)
    if resolved not in schedulers:
        folded = {n.lower(): n for n in schedulers}
        resolved = folded.get(name.lower(), resolved)
    if resolved not in schedulers:
        raise ConfigurationError(
            f"{where}: unknown scheduler {name!r}.{_did_you_mean(name, schedulers)} "
            f"Available: {_names(schedulers)} (PBT is short for PopulationBasedTraining)."
        )
    module, _, attr = schedulers[resolved].partition(":")
    return getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------
# the experiment


@dataclass
class Experiment:
    """A checked experiment, ready to build.

    :param document: The document as read (after overrides, paths resolved)
    :param path: The experiment file, ``None`` for a dictionary
    """

    document: dict
    path: Path | None
    name: str
    backend_name: str
    backend_options: dict
    config_space: dict
    metric: str | list[str]
    mode: str
    scheduler_class: type
    scheduler_options: dict
    stop: dict
    n_workers: int
    results_dir: Path | None
    tuner_options: dict
    source: _Source = field(repr=False, default=None)

    @property
    def metric_names(self) -> list[str]:
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    @property
    def time_attr(self) -> str | None:
        return self.scheduler_options.get("time_attr")

    @property
    def tuned_names(self) -> list[str]:
        """Hyperparameters with a domain (the constants left out)."""
        return [k for k, v in self.config_space.items() if _is_domain(v)]

    def check_results_dir(self) -> Path:
        """Check, without creating anything, that the folder receiving the
        results folder can be created and written.

        :return: The folder (``results_dir``, else ``$SYNETUNE_FOLDER``, else
            ``~/syne-tune``)
        :raises ConfigurationError: It is, or lies below, a file, or the
            nearest existing folder is not writable
        """
        if self.results_dir is not None:
            folder = Path(self.results_dir)
            where = self.source.where(("results_dir",))
            fix = "Set results_dir to a folder you can write to."
        else:
            env = os.environ.get("SYNETUNE_FOLDER")
            folder = Path(env).expanduser() if env else Path.home() / "syne-tune"
            where = f"{self.source.label}: the default results folder " + (
                "($SYNETUNE_FOLDER)" if env else "(~/syne-tune)"
            )
            fix = "Set results_dir in the experiment, or SYNETUNE_FOLDER, to a folder you can write to."
        existing = folder.absolute()
        while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
            existing = existing.parent
        problem = None
        if not existing.is_dir():
            problem = f"{existing} is a file" if existing.exists() else f"{existing} does not exist"
        elif not os.access(existing, os.W_OK | os.X_OK):
            problem = f"{existing} is not writable"
        if problem:
            action = "write to" if existing == folder.absolute() else "create"
            raise ConfigurationError(
                f"{where}: cannot {action} the results folder {folder}: {problem}. {fix}"
            )
        return folder

    def check_config_values(self, backend) -> None:
        """Check that ``backend`` can pass every configuration of the config
        space to a trial, before any trial starts.

        Works with backends that turn a configuration into arguments and files
        through ``_config_arguments`` and ``_trial_files`` (``LocalXBackend``:
        the command line cannot carry lists, mappings or keys with spaces;
        JSON cannot carry some values). Constants are checked as they are,
        every category of a ``choice`` (or ``ordinal``), one sample of other
        domains; other backends are not checked.

        :raises ConfigurationError: A key or value the backend cannot pass,
            phrased for the experiment file
        """
        to_arguments = getattr(backend, "_config_arguments", None)
        to_files = getattr(backend, "_trial_files", None)
        if not (callable(to_arguments) and callable(to_files)):
            return
        import numpy as np

        random_state = np.random.RandomState(0)
        sample = {}
        for key, domain in self.config_space.items():
            where = self.source.where(("config_space", key))
            if not _is_domain(domain):
                values, category = [domain], False
            elif getattr(domain, "categories", None) is not None:
                values, category = list(domain.categories), True
            else:
                values, category = [domain.sample(random_state=random_state)], False
            sample[key] = values[0]
            for value in values:
                try:
                    to_arguments(0, {key: value})
                    to_files(0, {key: value})
                except ConfigurationError as err:
                    raise ConfigurationError(
                        _config_value_message(backend, key, value, category, where, err)
                    ) from err
        try:
            to_arguments(0, sample)
            to_files(0, sample)
        except ConfigurationError as err:
            raise ConfigurationError(
                f"{self.source.where(('config_space',))}: the backend cannot pass this "
                f"config space to a trial: {err}."
            ) from err

    def make_backend(self):
        """Build the trial backend through the registry.

        :raises ConfigurationError: The backend's constructor rejects an option
        """
        from syne_tune_localx.registry import make_backend

        where = self.source.where(("backend", "options"))
        try:
            return make_backend({"name": self.backend_name, "options": dict(self.backend_options)})
        except ConfigurationError as err:
            raise ConfigurationError(f"{where}: {err}") from err
        except (TypeError, ValueError, AssertionError, OSError) as err:
            raise ConfigurationError(
                f"{where}: backend {self.backend_name!r} rejected its options: "
                f"{type(err).__name__}: {err}. Fix backend.options."
            ) from err

    def make_scheduler(self):
        """Build the scheduler, with ``config_space``, the metric and the mode
        filled in from the file.

        :raises ConfigurationError: The scheduler rejects an option
        """
        kwargs = dict(self.scheduler_options)
        params = inspect.signature(self.scheduler_class.__init__).parameters
        if "config_space" in params:
            kwargs["config_space"] = self.config_space
        if "metrics" in params:
            kwargs["metrics"] = self.metric_names
        elif "metric" in params:
            kwargs["metric"] = self.metric
        if "do_minimize" in params:
            kwargs["do_minimize"] = self.mode == "min"
        elif "mode" in params:
            kwargs["mode"] = self.mode
        try:
            return self.scheduler_class(**kwargs)
        except Exception as err:
            if len(self.metric_names) > 1 and self._takes_one_metric(kwargs):
                name = self.scheduler_class.__name__
                raise ConfigurationError(
                    f"{self.source.where(('metric',))}: {name} optimises one metric, got "
                    f"{self.metric!r}. Give one name (e.g. `metric: {self.metric_names[0]}`), "
                    "or choose a multi-objective scheduler (e.g. `scheduler: EHVI`)."
                ) from err
            reason = re.sub(
                r"<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>", r"\1", str(err) or type(err).__name__
            )
            raise ConfigurationError(
                f"{self.source.where(('scheduler',))}: {self.scheduler_class.__name__} "
                f"rejected its options {self.scheduler_options!r}: {reason}. Fix "
                "scheduler.options."
            ) from err

    def _takes_one_metric(self, kwargs: dict) -> bool:
        """Whether the scheduler that rejected several metrics accepts one."""
        kwargs = dict(kwargs)
        if "metrics" in kwargs:
            kwargs["metrics"] = self.metric_names[:1]
        elif "metric" in kwargs:
            kwargs["metric"] = self.metric_names[0]
        try:
            self.scheduler_class(**kwargs)
        except Exception:  # noqa: BLE001 -- it rejects something else
            return False
        return True

    def make_stop_criterion(self):
        from syne_tune import StoppingCriterion

        return StoppingCriterion(**self.stop)


def _config_value_message(backend, key: str, value: Any, category: bool, where: str, err: Exception) -> str:
    json_fix = (
        "set backend.options.pass_args_as_json: true (the script then reads its "
        "configuration with syne_tune_localx.trial.read_config)"
    )
    if not getattr(backend, "pass_args_as_json", False):
        try:
            backend._config_arguments(0, {key: None})
        except ConfigurationError:
            return (
                f"{where}: config_space key {key!r} cannot be a command-line flag: a flag "
                "is a non-empty name without '=', whitespace or a leading '-'. Rename it, "
                f"or {json_fix}."
            )
        kinds = {list: "a list", tuple: "a list", dict: "a mapping", set: "a set"}
        kind = kinds.get(type(value))
        if kind is not None:
            what = f"the category {value!r}" if category else f"config_space.{key}"
            return f"{where}: {what} is {kind}, which the command line cannot carry; {json_fix}."
    shown = f"the category {value!r}" if category else f"the value {value!r}"
    return f"{where}: the backend cannot pass {shown} to a trial: {err}."


def load_experiment_file(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Experiment:
    """Read and check an experiment file.

    :param path: YAML or JSON file
    :param overrides: ``key=value`` items applied on top (see :func:`apply_overrides`)
    :return: The checked experiment
    :raises ConfigurationError: Anything in the file or overrides is wrong
    """
    path = Path(path).expanduser().absolute()
    document, text = read_document(path)
    source = _Source(label=str(path), text=text)
    return parse_experiment(document, base_dir=path.parent, source=source, overrides=overrides, path=path)


def parse_experiment(
    document: Any,
    base_dir: str | os.PathLike | None = None,
    source: _Source | None = None,
    overrides: Sequence[str] = (),
    path: Path | None = None,
) -> Experiment:
    """Check an experiment document (a dictionary as read from a file).

    :param document: The experiment as a dictionary
    :param base_dir: Folder relative paths are taken against (default: the
        current folder)
    :param source: For error messages (set by :func:`load_experiment_file`)
    :param overrides: ``key=value`` items applied first
    :param path: The experiment file, if any
    :return: The checked experiment
    :raises ConfigurationError: Anything is wrong; all checks happen here,
        except the ones only the backend's and scheduler's constructors can do
    """
    source = source or _Source(label="the experiment")
    base_dir = Path(base_dir).absolute() if base_dir is not None else Path.cwd()
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigurationError(
            f"{source.label}: an experiment is a mapping of keys ({_names(TOP_LEVEL_KEYS)}), "
            f"got {type(document).__name__}. See `syne-tune-localx run --help`."
        )
    document = apply_overrides(dict(document), overrides, source)
    at = source.where

    unknown = [k for k in document if k not in TOP_LEVEL_KEYS]
    if unknown:
        key = unknown[0]
        hint = (
            f" Did you mean {_KEY_SYNONYMS[key]!r}?"
            if key in _KEY_SYNONYMS
            else _did_you_mean(str(key), TOP_LEVEL_KEYS)
        )
        raise ConfigurationError(
            f"{at((key,))}: unknown key {key!r}.{hint} "
            f"Allowed top-level keys: {_names(TOP_LEVEL_KEYS)}."
        )
    missing = [k for k in REQUIRED_KEYS if document.get(k) is None]
    if missing:
        examples = {
            "backend": "backend: {name: localx, options: {entry_point: train.py}}",
            "config_space": "config_space: {lr: loguniform(1e-4, 1e-1)}",
            "metric": "metric: accuracy",
            "stop": "stop: {max_wallclock_time: 600}",
        }
        raise ConfigurationError(
            f"{source.label}: the experiment needs {', '.join(map(repr, missing))}; add e.g. "
            + "; ".join(f"`{examples[k]}`" for k in missing)
            + "."
        )

    # backend
    backend_name, backend_options = _parse_backend(document["backend"], base_dir, at)

    # config space
    config_space_doc = document["config_space"]
    if not isinstance(config_space_doc, Mapping) or not config_space_doc:
        raise ConfigurationError(
            f"{at(('config_space',))}: config_space must be a non-empty mapping from "
            f"hyperparameter name to domain or constant, got {config_space_doc!r}. "
            f"{_domain_help()}."
        )
    config_space = {}
    entries = list(config_space_doc.items())
    for index, (key, value) in enumerate(entries):
        if not isinstance(key, str) or not key:
            raise ConfigurationError(
                f"{at(('config_space',))}: hyperparameter names must be strings, got {key!r}."
            )
        _check_not_split(key, value, entries[index + 1 :], at(("config_space", key)))
        config_space[key] = parse_domain(value, at(("config_space", key)))
    if not any(_is_domain(v) for v in config_space.values()):
        raise ConfigurationError(
            f"{at(('config_space',))}: every entry is a constant, so there is nothing "
            f"to tune. {_domain_help()}."
        )

    # metric and mode
    metric = document["metric"]
    if not (isinstance(metric, str) and metric) and not (
        isinstance(metric, list) and metric and all(isinstance(m, str) and m for m in metric)
    ):
        raise ConfigurationError(
            f"{at(('metric',))}: metric must be the name the training script reports, "
            f"e.g. `metric: accuracy`, got {metric!r}."
        )
    mode = document.get("mode", "min")
    if mode not in MODES:
        raise ConfigurationError(
            f"{at(('mode',))}: mode must be 'min' or 'max', got {mode!r}."
        )

    # scheduler
    scheduler_class, scheduler_options = _parse_scheduler(document.get("scheduler"), at)
    if isinstance(metric, list) and "metrics" not in inspect.signature(
        scheduler_class.__init__
    ).parameters:
        if len(metric) != 1:
            raise ConfigurationError(
                f"{at(('metric',))}: {scheduler_class.__name__} optimises one metric, "
                f"got {metric!r}. Give one name, or use a multi-objective scheduler."
            )
        metric = metric[0]

    stop = _parse_stop(document["stop"], at)

    n_workers = document.get("n_workers", 1)
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigurationError(
            f"{at(('n_workers',))}: n_workers must be a whole number >= 1, got {n_workers!r}."
        )

    default_name = path.stem if path is not None else "experiment"
    name = document.get("name", re.sub(r"[^A-Za-z0-9]+", "-", default_name).strip("-") or "experiment")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", name):
        raise ConfigurationError(
            f"{at(('name',))}: name must be letters and digits, optionally joined by "
            f"single '-', e.g. `name: digits-asha`; got {name!r}."
        )

    results_dir = document.get("results_dir")
    if results_dir is not None:
        if not isinstance(results_dir, str) or not results_dir:
            raise ConfigurationError(
                f"{at(('results_dir',))}: results_dir must be a folder path, got {results_dir!r}."
            )
        results_dir = _normalised((base_dir / Path(results_dir).expanduser()).absolute())

    tuner_options = _parse_tuner(document.get("tuner"), at)

    resolved = copy.deepcopy(dict(document))
    resolved["backend"] = {"name": backend_name, "options": backend_options}
    if results_dir is not None:
        resolved["results_dir"] = str(results_dir)
    return Experiment(
        document=resolved,
        path=path,
        name=name,
        backend_name=backend_name,
        backend_options=backend_options,
        config_space=config_space,
        metric=metric,
        mode=mode,
        scheduler_class=scheduler_class,
        scheduler_options=scheduler_options,
        stop=stop,
        n_workers=n_workers,
        results_dir=results_dir,
        tuner_options=tuner_options,
        source=source,
    )


def _check_not_split(key: str, value: Any, following: list, where: str) -> None:
    """A domain cut at a comma: in a flow mapping (``{f: uniform(0, 1)}``) YAML
    splits at every comma, leaving ``f: 'uniform(0'`` and a key ``'1)'``."""
    if not isinstance(value, str) or _CALL_FORM.match(value):
        return
    start = _CALL_START.match(value)
    if start is None or start.group(1) not in DOMAIN_NAMES:
        return
    pieces = [value]
    for other_key, other_value in following:
        if other_value is not None or not isinstance(other_key, str):
            break
        pieces.append(other_key)
        if other_key.rstrip().endswith(")"):
            break
    if len(pieces) == 1:
        return  # not a split: parse_domain explains the missing ')'
    whole = ", ".join(p.strip() for p in pieces)
    raise ConfigurationError(
        f"{where}: {value!r} is the start of the domain {whole!r}, cut at its commas: YAML splits "
        "a flow mapping ({...} on one line) at every comma, so the rest became keys of their "
        f"own ({', '.join(map(repr, pieces[1:]))}). Quote the value ({key}: \"{whole}\") or write "
        "config_space in block style, one `name: domain` per line."
    )


def _is_domain(value: Any) -> bool:
    from syne_tune.config_space import Domain

    return isinstance(value, Domain)


def _parse_backend(spec: Any, base_dir: Path, at) -> tuple[str, dict]:
    from syne_tune_localx.errors import LocalXError
    from syne_tune_localx.registry import OptionError, check_backend_options, load_backend_class

    where = at(("backend",))
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"{where}: backend must be a mapping like `{{name: localx, options: "
            f"{{entry_point: train.py}}}}`, got {spec!r}."
        )
    unknown = [k for k in spec if k not in ("name", "options")]
    if unknown:
        raise ConfigurationError(
            f"{at(('backend', unknown[0]))}: unknown key {unknown[0]!r} in backend; "
            "allowed: 'name', 'options'. Put constructor arguments under 'options'."
        )
    name = spec.get("name")
    try:
        backend_class = load_backend_class(name)
    except LocalXError as err:
        # the registry's messages list what is available and how to fix it
        raise ConfigurationError(f"{at(('backend', 'name'))}: {err}") from err
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            f"{at(('backend', 'options'))}: options must be a mapping from constructor "
            f"argument to value, got {options!r}."
        )
    options = dict(options)
    try:
        check_backend_options(name, backend_class, options, where="backend")
    except OptionError as err:
        key = ("backend", "options") + ((err.key,) if err.key else ())
        raise ConfigurationError(f"{at(key)}: {err}") from err
    entry_point = options.get("entry_point")
    if isinstance(entry_point, str) and entry_point:
        resolved = (base_dir / Path(entry_point).expanduser()).absolute()
        if not resolved.is_file():
            raise ConfigurationError(
                f"{at(('backend', 'options', 'entry_point'))}: the training script "
                f"{entry_point!r} does not exist (looked for {resolved}; relative paths "
                "are taken from the experiment file's folder)."
            )
        options["entry_point"] = str(_normalised(resolved))
    return name, options


def _normalised(path: Path) -> Path:
    """``path`` (absolute) without ``.`` and ``..``: a ``..`` is resolved on
    the file system (symbolic links followed), as the operating system would."""
    if ".." in path.parts:
        return path.resolve()
    return Path(os.path.normpath(path))


def _parse_scheduler(spec: Any, at) -> tuple[type, dict]:
    where = at(("scheduler",))
    if spec is None:
        spec = {"name": "RandomSearch"}
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"{where}: scheduler must be a name (`scheduler: RandomSearch`) or a "
            f"mapping (`scheduler: {{name: ASHA, options: {{...}}}}`), got {spec!r}."
        )
    unknown = [k for k in spec if k not in ("name", "options")]
    if unknown:
        raise ConfigurationError(
            f"{at(('scheduler', unknown[0]))}: unknown key {unknown[0]!r} in scheduler; "
            "allowed: 'name', 'options'. Put the scheduler's arguments under 'options'."
        )
    scheduler_class = _load_scheduler_class(spec.get("name"), at(("scheduler", "name")))
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            f"{at(('scheduler', 'options'))}: options must be a mapping, got {options!r}."
        )
    options = dict(options)
    params = {
        k: p
        for k, p in inspect.signature(scheduler_class.__init__).parameters.items()
        if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    accepted = {k: p for k, p in params.items() if k not in _SCHEDULER_FILLED}
    for key in options:
        if key in _SCHEDULER_FILLED and key in params:
            top = _SCHEDULER_FILLED[key]
            raise ConfigurationError(
                f"{at(('scheduler', 'options', key))}: {key!r} is filled in from the "
                f"top-level key {top!r}; remove it from scheduler.options and set `{top}:` instead."
            )
        if key not in accepted:
            raise ConfigurationError(
                f"{at(('scheduler', 'options', key))}: {scheduler_class.__name__} takes no "
                f"option {key!r}.{_did_you_mean(str(key), accepted)} Accepted options: "
                f"{_names(accepted)}."
            )
    required = [k for k, p in accepted.items() if p.default is p.empty and k not in options]
    if required:
        hint = ", ".join(f"{k}: ..." for k in required)
        raise ConfigurationError(
            f"{at(('scheduler',))}: {scheduler_class.__name__} needs the option(s) "
            f"{', '.join(map(repr, required))}; add `options: {{{hint}}}` to scheduler "
            f"(e.g. time_attr is the name of the progress metric the script reports, "
            f"such as epoch). Accepted options: {_names(accepted)}."
        )
    return scheduler_class, options


def _parse_stop(spec: Any, at) -> dict:
    import dataclasses

    from syne_tune import StoppingCriterion

    fields = {f.name for f in dataclasses.fields(StoppingCriterion)}
    where = at(("stop",))
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigurationError(
            f"{where}: stop must be a mapping with at least one of {_names(fields)}, "
            f"e.g. `stop: {{max_wallclock_time: 600}}`; got {spec!r}."
        )
    for key, value in spec.items():
        if key not in fields:
            raise ConfigurationError(
                f"{at(('stop', key))}: unknown stopping criterion {key!r}."
                f"{_did_you_mean(str(key), fields)} Allowed: {_names(fields)}."
            )
        if key in ("min_metric_value", "max_metric_value"):
            if not isinstance(value, Mapping) or not all(_is_number(v) for v in value.values()):
                raise ConfigurationError(
                    f"{at(('stop', key))}: {key} maps metric names to thresholds, e.g. "
                    f"`{key}: {{accuracy: 0.99}}`; got {value!r}."
                )
        elif value is not None and (not _is_number(value) or value < 0):
            raise ConfigurationError(
                f"{at(('stop', key))}: {key} must be a number >= 0, got {value!r}."
            )
    if all(v is None for v in spec.values()):
        raise ConfigurationError(
            f"{where}: every stopping criterion is empty; set at least one, e.g. "
            "`max_wallclock_time: 600`."
        )
    return dict(spec)


def _parse_tuner(spec: Any, at) -> dict:
    from syne_tune import Tuner

    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"{at(('tuner',))}: tuner must be a mapping of syne_tune.Tuner arguments, "
            f"e.g. `tuner: {{sleep_time: 0.5}}`; got {spec!r}."
        )
    params = {
        k for k in inspect.signature(Tuner.__init__).parameters if k not in ("self",)
    }
    accepted = sorted(params - set(_TUNER_FILLED))
    for key in spec:
        if key in _TUNER_FILLED:
            top = _TUNER_FILLED[key]
            fix = f"set the top-level key `{top}:` instead" if top else "the command sets it"
            raise ConfigurationError(
                f"{at(('tuner', key))}: {key!r} cannot be set under tuner; {fix}."
            )
        if key not in params:
            raise ConfigurationError(
                f"{at(('tuner', key))}: syne_tune.Tuner takes no argument {key!r}."
                f"{_did_you_mean(str(key), accepted)} Accepted under tuner: {_names(accepted)}."
            )
    options = dict(spec)
    options.setdefault("sleep_time", DEFAULT_SLEEP_TIME)
    defaults = {
        k: p.default for k, p in inspect.signature(Tuner.__init__).parameters.items()
    }
    for key, value in options.items():
        default = defaults.get(key)
        problem = None
        if isinstance(default, bool):
            if not isinstance(value, bool):
                problem = "must be true or false"
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problem = "must be a whole number >= 0"
        elif isinstance(default, float) or key == "sleep_time":
            if not _is_number(value) or math.isnan(value) or value < 0:
                problem = "must be seconds >= 0"
        if problem:
            raise ConfigurationError(
                f"{at(('tuner', key))}: {key} {problem}, got {value!r}."
            )
    return options


# --------------------------------------------------------------------------
# helpers


def _names(names) -> str:
    return ", ".join(repr(n) for n in sorted(map(str, names))) or "(none)"


def _did_you_mean(name: str, choices) -> str:
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        folded = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
        close = [folded[c] for c in close]
    return f" Did you mean {close[0]!r}?" if close else ""
