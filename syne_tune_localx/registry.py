"""Selecting a trial backend by name.

Backends are found in two places:

* the built-in names :data:`BUILTIN_BACKENDS` (syne-tune's own ``local`` and
  ``python`` backends), held as ``"module:attr"`` strings so that nothing is
  imported until one is asked for;
* the entry-point group :data:`ENTRY_POINT_GROUP` of installed distributions.
  ``syne-tune-localx`` registers its own ``localx`` there, and a third-party
  package registers a backend the same way, e.g. in its ``setup.cfg``::

      [options.entry_points]
      syne_tune_localx.backends =
          mybackend = my_package.backend:MyBackend

:func:`available_backends` reads metadata only and imports nothing: importing
``syne_tune.backend`` sets ``OMP_NUM_THREADS`` for the whole process, and a
plugin's import may be slow or broken. :func:`load_backend_class` imports one
backend, lazily, and caches it (:func:`clear_cache` forgets). :func:`make_backend`
builds a backend from a spec (a dict, or a YAML or JSON file) and checks its
options against the constructor first.

Failure policy: the name asked for raises (:class:`BackendNotFoundError` for an
unknown name, :class:`BackendLoadError` for a plugin that cannot be imported, is
claimed by two sources, or is not a ``TrialBackend`` subclass); a broken entry
that was not asked for is skipped with a :class:`BackendRegistryWarning` when
listing.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import json
import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syne_tune_localx.errors import (
    BackendLoadError,
    BackendNotFoundError,
    ConfigurationError,
)

ENTRY_POINT_GROUP = "syne_tune_localx.backends"
"""Entry-point group that backend plugins register themselves into."""

BUILTIN_BACKENDS: dict[str, str] = {
    "local": "syne_tune.backend.local_backend:LocalBackend",
    "python": "syne_tune.backend.python_backend.python_backend:PythonBackend",
}
"""syne-tune's own backends, offered by name without being registered in metadata."""

_TRIAL_BACKEND_MODULE = "syne_tune.backend.trial_backend"
_SPEC_KEYS = ("name", "options")
_YAML_SUFFIXES = (".yaml", ".yml")
_JSON_SUFFIXES = (".json",)

# name -> class; filled by load_backend_class, emptied by clear_cache
_CACHE: dict[str, type] = {}


class BackendRegistryWarning(UserWarning):
    """An installed backend entry that was not asked for is broken and was skipped."""


@dataclass(frozen=True)
class _Candidate:
    """One source claiming a backend name."""

    name: str
    value: str
    # "built-in" or "<distribution> <version>"
    origin: str
    # distribution name for "pip uninstall", None for built-ins
    distribution: str | None
    # why the value cannot be loaded, found from metadata alone; None if fine
    problem: str | None = None

    @property
    def source(self) -> str:
        return f"{self.origin} ({self.value})"


# --------------------------------------------------------------------------
# metadata boundary


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """Entry points of :data:`ENTRY_POINT_GROUP` from all installed distributions.

    Tests replace this function to inject entry points. One distribution whose
    metadata cannot be read is warned about and skipped rather than hiding the
    others (``importlib.metadata.entry_points`` would raise for all of them).

    :return: Entry points, each with its distribution attached as ``.dist``
    """
    found = []
    seen = set()
    for dist in importlib.metadata.distributions():
        try:
            dist_name = dist.metadata["Name"]
            # Same rule as importlib.metadata.entry_points(): a distribution found
            # twice on sys.path counts once, the first one wins.
            key = _normalize(dist_name) if dist_name else None
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            found.extend(dist.entry_points.select(group=ENTRY_POINT_GROUP))
        except Exception as err:  # noqa: BLE001 -- any unreadable metadata is skipped
            where = getattr(dist, "_path", None) or dist
            warnings.warn(
                f"Skipping the entry points of the distribution at {where}: its "
                f"metadata cannot be read ({type(err).__name__}: {err}). Reinstall "
                "or remove that distribution to silence this warning.",
                BackendRegistryWarning,
                stacklevel=3,
            )
    return found


def _normalize(dist_name: str) -> str:
    # PEP 503 name normalization
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _describe_distribution(dist: Any) -> tuple[str, str | None]:
    """Label ``"<name> <version>"`` and name of a distribution, tolerating broken metadata."""
    if dist is None:
        return "an unknown distribution", None
    name = version = None
    try:
        name = getattr(dist, "name", None) or dist.metadata["Name"]
    except Exception:  # noqa: BLE001
        pass
    try:
        version = getattr(dist, "version", None) or dist.metadata["Version"]
    except Exception:  # noqa: BLE001
        pass
    if not name:
        return "a distribution without a name", None
    return (f"{name} {version}" if version else str(name)), str(name)


def _check_value(value: str) -> str | None:
    """Why ``value`` cannot name a backend class, or ``None`` when it can."""
    match = importlib.metadata.EntryPoint.pattern.match(value or "")
    if match is None:
        return f"the value {value!r} is not of the form 'module:Class'"
    if not match.group("attr"):
        return f"the value {value!r} names a module; it must be of the form 'module:Class'"
    return None


def _candidates() -> dict[str, list[_Candidate]]:
    """Every source claiming each name: built-ins first, then entry points."""
    claims: dict[str, list[_Candidate]] = {}
    for name, value in BUILTIN_BACKENDS.items():
        claims.setdefault(name, []).append(
            _Candidate(name=name, value=value, origin="built-in", distribution=None)
        )
    for ep in _entry_points():
        if ep.group != ENTRY_POINT_GROUP:
            continue
        origin, dist_name = _describe_distribution(getattr(ep, "dist", None))
        candidate = _Candidate(
            name=ep.name,
            value=ep.value,
            origin=origin,
            distribution=dist_name,
            problem=_check_value(ep.value),
        )
        same_name = claims.setdefault(ep.name, [])
        # the same distribution seen again with the same value is not a conflict
        if not any(c.origin == origin and c.value == ep.value for c in same_name):
            same_name.append(candidate)
    return claims


def _conflict_message(name: str, claims: list[_Candidate]) -> str:
    sources = "; ".join(c.source for c in claims)
    removable = sorted({c.distribution for c in claims if c.distribution})
    how = ", ".join(f"'pip uninstall {d}'" for d in removable)
    return (
        f"Backend name {name!r} is claimed by {len(claims)} sources: {sources}. "
        f"A name must come from one source only; remove all but one of them ({how})."
    )


def _problem_message(candidate: _Candidate) -> str:
    fix = (
        f"Fix the entry point {candidate.name!r} in group {ENTRY_POINT_GROUP!r} of "
        f"{candidate.distribution} or uninstall it ('pip uninstall {candidate.distribution}')"
        if candidate.distribution
        else f"Fix or remove the distribution that registers {candidate.name!r}"
    )
    return (
        f"Backend {candidate.name!r} from {candidate.source} cannot be used: "
        f"{candidate.problem}. {fix}."
    )


# --------------------------------------------------------------------------
# public API


def available_backends() -> dict[str, str]:
    """Names that can be selected, and where each comes from.

    Reads installed metadata only and imports nothing, so listing is cheap and
    has no side effects. An entry that is malformed or whose name is claimed by
    more than one source is skipped with a :class:`BackendRegistryWarning`
    (asking for that name with :func:`load_backend_class` raises instead).

    :return: Dictionary sorted by name, mapping each name to its source, e.g.
        ``"syne-tune-localx 0.1.0 (syne_tune_localx.backend:LocalXBackend)"`` or
        ``"built-in (syne_tune.backend.local_backend:LocalBackend)"``
    """
    listed = {}
    for name, claims in sorted(_candidates().items()):
        if len(claims) > 1:
            warnings.warn(
                f"Skipping backend {name!r}: {_conflict_message(name, claims)}",
                BackendRegistryWarning,
                stacklevel=2,
            )
        elif claims[0].problem is not None:
            warnings.warn(
                f"Skipping backend {name!r}: {_problem_message(claims[0])}",
                BackendRegistryWarning,
                stacklevel=2,
            )
        else:
            listed[name] = claims[0].source
    return listed


def load_backend_class(name: str) -> type:
    """Import the backend class registered under ``name``.

    The class is cached; :func:`clear_cache` forgets it (for tests, or after
    installing packages in a running process).

    :param name: Backend name, one of :func:`available_backends`
    :return: A subclass of :class:`~syne_tune.backend.trial_backend.TrialBackend`
    :raises BackendNotFoundError: No source registers ``name``; the message
        lists the available names
    :raises BackendLoadError: The plugin's import fails (chained to the original
        error), two sources claim ``name``, its entry point is malformed, or the
        object is not a ``TrialBackend`` subclass; the message names the
        distribution
    """
    if not isinstance(name, str):
        raise ConfigurationError(
            f"A backend name must be a string, got {name!r} ({type(name).__name__}). "
            f"Use one of: {_names_text(available_backends())}."
        )
    cached = _CACHE.get(name)
    if cached is not None:
        return cached
    claims = _candidates().get(name)
    if not claims:
        raise BackendNotFoundError(_not_found_message(name))
    if len(claims) > 1:
        raise BackendLoadError(_conflict_message(name, claims))
    candidate = claims[0]
    if candidate.problem is not None:
        raise BackendLoadError(_problem_message(candidate))
    try:
        obj = importlib.metadata.EntryPoint(
            name=name, value=candidate.value, group=ENTRY_POINT_GROUP
        ).load()
    except Exception as err:
        who = (
            f"the distribution {candidate.distribution}"
            if candidate.distribution
            else "syne-tune"
        )
        raise BackendLoadError(
            f"Backend {name!r} from {candidate.source} failed to import: "
            f"{type(err).__name__}: {err}. The error comes from {who}; fix or "
            "reinstall it, or choose another backend name."
        ) from err
    if not _is_trial_backend_class(obj):
        raise BackendLoadError(
            f"Backend {name!r} from {candidate.source} is {obj!r}, which is not a "
            f"subclass of {_TRIAL_BACKEND_MODULE}.TrialBackend. The entry point must "
            f"name a TrialBackend subclass; fix it in {candidate.origin} or "
            "choose another backend name."
        )
    # another thread may have won the race; keep the first class stored
    return _CACHE.setdefault(name, obj)


def clear_cache() -> None:
    """Forget the classes loaded by :func:`load_backend_class`."""
    _CACHE.clear()


def backend_options(backend_class: type) -> dict[str, inspect.Parameter] | None:
    """Keyword options accepted by the constructor of ``backend_class``.

    Walks the ``__init__`` methods along the MRO: the walk starts at the first
    class that defines ``__init__`` and continues past a class only while that
    class's ``__init__`` takes ``**kwargs``, because a cooperative mixin
    (``def __init__(self, *, option=..., **kwargs): super().__init__(**kwargs)``)
    forwards what it does not know to the next class. The walk ends at the
    first ``__init__`` without ``**kwargs`` (e.g. ``TrialBackend.__init__``).
    A name seen twice keeps its first parameter, since the nearest class
    receives it first (and may supply a default).

    A constructor that takes ``**kwargs`` and keeps them instead of forwarding
    them gets its options checked too strictly; such a class can declare its
    options with an explicit signature instead.

    :param backend_class: Class to inspect
    :return: Dictionary from option name to its :class:`inspect.Parameter`
        (``default`` is ``Parameter.empty`` for a required one), or ``None`` if a
        signature cannot be read, in which case options are not checked
    """
    accepted: dict[str, inspect.Parameter] = {}
    for klass in backend_class.__mro__:
        if klass is object:
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):
            return None
        # drop "self"
        if params and params[0].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            params = params[1:]
        forwards = False
        for param in params:
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif param.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            ):
                accepted.setdefault(param.name, param)
        if not forwards:
            break
    return accepted


def make_backend(spec: Mapping[str, Any] | str | os.PathLike) -> Any:
    """Build a trial backend from a spec.

    The spec is ``{"name": "localx", "options": {...}}`` (``options`` may be
    left out), or a dictionary whose ``backend`` key holds that, or the path of
    a YAML (``.yaml``, ``.yml``) or JSON (``.json``) file holding either. In a
    file, a relative ``entry_point`` option is taken relative to the file's
    folder; in a dictionary, relative to the current working folder.

    Options are checked against the constructor before it is called (see
    :func:`backend_options`): an unknown or a missing required option raises
    :class:`ConfigurationError` listing the accepted ones.

    :param spec: Dictionary or path of a YAML or JSON file, as above
    :return: The backend, an instance of
        :class:`~syne_tune.backend.trial_backend.TrialBackend`
    :raises ConfigurationError: The spec or file is malformed, or an option is
        unknown or missing
    :raises BackendNotFoundError: See :func:`load_backend_class`
    :raises BackendLoadError: See :func:`load_backend_class`
    """
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec).absolute()
        where = f"the file {path}"
        document = _read_spec_file(path)
        base_dir = path.parent
    elif isinstance(spec, Mapping):
        where = "the spec passed to make_backend()"
        document = spec
        base_dir = None
    else:
        raise ConfigurationError(
            f"A backend spec must be a dictionary or the path of a YAML or JSON "
            f"file, got {spec!r} ({type(spec).__name__})."
        )
    name, options = _parse_spec(document, where)
    backend_class = load_backend_class(name)
    check_backend_options(name, backend_class, options, where)
    if base_dir is not None:
        entry_point = options.get("entry_point")
        if isinstance(entry_point, (str, os.PathLike)) and not Path(entry_point).is_absolute():
            resolved = base_dir / entry_point
            options["entry_point"] = str(resolved) if isinstance(entry_point, str) else resolved
    return backend_class(**options)


# --------------------------------------------------------------------------
# helpers


def _names_text(names) -> str:
    return ", ".join(repr(n) for n in sorted(names)) or "(none)"


def _not_found_message(name: str) -> str:
    available = available_backends()
    close = difflib.get_close_matches(name, list(available), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"No backend is registered under the name {name!r}.{hint} Available: "
        f"{_names_text(available)}. Change the backend name to one of these, or "
        f"install a package that registers {name!r} in the entry-point group "
        f"{ENTRY_POINT_GROUP!r}."
    )


def _is_trial_backend_class(obj: Any) -> bool:
    if not isinstance(obj, type):
        return False
    module = sys.modules.get(_TRIAL_BACKEND_MODULE)
    if module is None:
        # Any subclass of TrialBackend has imported its module already, so obj is
        # not one. Not importing it here keeps a wrong plugin from changing the
        # process (importing syne_tune.backend sets OMP_NUM_THREADS).
        return False
    trial_backend = getattr(module, "TrialBackend", None)
    return trial_backend is not None and issubclass(obj, trial_backend)


def _read_spec_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in _YAML_SUFFIXES + _JSON_SUFFIXES:
        raise ConfigurationError(
            f"Cannot tell the format of the backend spec file {path}: its suffix "
            f"{path.suffix!r} is none of {', '.join(_YAML_SUFFIXES + _JSON_SUFFIXES)}. "
            "Rename the file. (To select a backend by name, pass a dictionary "
            "such as {'name': 'localx', 'options': {...}}.)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigurationError(
            f"Cannot read the backend spec file {path}: {err.strerror or err}."
        ) from err
    except UnicodeDecodeError as err:
        raise ConfigurationError(
            f"The backend spec file {path} is not UTF-8 text ({err}). Save it as UTF-8."
        ) from err
    if suffix in _JSON_SUFFIXES:
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigurationError(
                f"Invalid JSON in {path}, line {err.lineno}, column {err.colno}: "
                f"{err.msg}. Fix the file."
            ) from err
    import yaml  # a dependency; imported here so that listing backends never needs it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        place = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise ConfigurationError(
            f"Invalid YAML in {path}{place}: {detail}. Fix the file."
        ) from err


def _parse_spec(document: Any, where: str) -> tuple[str, dict[str, Any]]:
    """Name and a fresh options dictionary from a spec document."""
    # a whole experiment file (its own `name` is the experiment's) holds the spec
    # under `backend:`
    if (
        isinstance(document, Mapping)
        and "backend" in document
        and ("name" not in document or isinstance(document["backend"], Mapping))
    ):
        where = f"the 'backend' entry of {where}"
        document = document["backend"]
    if not isinstance(document, Mapping):
        raise ConfigurationError(
            f"{_capitalize(where)} must be a mapping with keys 'name' and "
            f"optionally 'options' (or a mapping with a 'backend' key holding one), "
            f"got {document!r}."
        )
    unknown = sorted(str(k) for k in document if k not in _SPEC_KEYS)
    if unknown:
        raise ConfigurationError(
            f"Unknown key(s) {', '.join(map(repr, unknown))} in {where}; allowed "
            f"keys are {_names_text(_SPEC_KEYS)}. Put backend options under 'options'."
        )
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"{_capitalize(where)} needs a 'name' naming the backend, got {name!r}. "
            f"Available: {_names_text(available_backends())}."
        )
    options = document.get("options")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            f"'options' in {where} must be a mapping from option name to value, "
            f"got {options!r} ({type(options).__name__})."
        )
    bad_keys = [k for k in options if not isinstance(k, str)]
    if bad_keys:
        raise ConfigurationError(
            f"Option names in {where} must be strings, got {bad_keys!r}."
        )
    return name, dict(options)


class OptionError(ConfigurationError):
    """Options a backend's constructor does not take, or lacks.

    :param message: What is wrong and how to fix it
    :param key: The first offending option, ``None`` when options are missing
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def check_backend_options(
    name: str, backend_class: type, options: Mapping[str, Any], where: str
) -> None:
    """Check options against the constructor of ``backend_class`` (see
    :func:`backend_options`); nothing is checked if its signature is unknown.

    :param name: The name the backend was asked for by
    :param backend_class: Its class
    :param options: The options given
    :param where: Where the options were written, for the message
    :raises OptionError: An option is not accepted, or a required one is missing
    """
    accepted = backend_options(backend_class)
    if accepted is None:
        return
    qualified = f"{backend_class.__module__}.{backend_class.__qualname__}"
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(accepted), n=1)
            if close:
                hints.append(f"{key!r} -> {close[0]!r}?")
        hint = f" Did you mean: {', '.join(hints)}" if hints else ""
        raise OptionError(
            f"backend {name!r} ({qualified}) takes no option "
            f"{', '.join(map(repr, unknown))}.{hint} Accepted options: "
            f"{_names_text(accepted)}. Change 'options' in {where}.",
            key=unknown[0],
        )
    missing = sorted(
        k
        for k, p in accepted.items()
        if p.default is inspect.Parameter.empty and k not in options
    )
    if missing:
        raise OptionError(
            f"backend {name!r} ({qualified}) needs the option(s) "
            f"{', '.join(map(repr, missing))}, missing from 'options' in {where}. "
            f"Accepted options: {_names_text(accepted)}."
        )


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
