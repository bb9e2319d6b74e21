"""Tuning a Python function: :meth:`LocalXBackend.from_function
<syne_tune_localx.backend.LocalXBackend.from_function>`.

The function is serialised with ``dill`` (by value where needed, so closures,
lambdas and functions defined in ``__main__`` or a notebook work) into a
content-addressed *payload file*. Each trial runs
``python -m syne_tune_localx.function_runner --localx-sha256=<digest> <payload>``
followed by the usual trial arguments (JSON mode: ``--st_config_json_filename``
and ``--st_checkpoint_dir``). The runner refuses a payload whose SHA-256 is not
the digest it was given, loads the function and calls it with the trial's
configuration (see :mod:`syne_tune_localx.function_runner` for the calling
convention). The backend is an ordinary :class:`LocalXBackend`, so GPU
rotation, checkpoints and graceful stops work as for a script.

Payload format: a pickled header dictionary (format version, the function's
qualified name, the tuner's ``sys.path``), then the dill bytes of the function.
The header is read first so that the function's modules can be found in the
trial when they are imported at unpickling time.

dill stores functions and classes of an importable module by reference (module
and name). A module the tuner loaded from a file by path
(``importlib.util.spec_from_file_location``), which a fresh process cannot
import by name, is listed in the header (format 2) with its file, and the
runner loads it from there before unpickling, as the tuner did. A module with
no file at all is refused by :func:`serialize_function`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syne_tune_localx.errors import ConfigurationError

PAYLOAD_FORMAT = 1
PAYLOAD_FORMAT_WITH_MODULES = 2
PAYLOAD_SUFFIX = ".dill"
PAYLOAD_FOLDER_NAME = ".localx-functions"
RUNNER_MODULE = "syne_tune_localx.function_runner"
SHA_ARG = "localx-sha256"
_NOT_ALLOWED = ("entry_point", "binary")


def serialize_function(fn: Callable) -> bytes:
    """The payload bytes for ``fn``.

    :param fn: A callable; closures, lambdas and ``__main__`` functions are
        stored by value
    :return: Header and function, as described in the module docstring
    :raises ConfigurationError: ``fn`` is not callable, or captures an object
        dill cannot serialise (an open file, a lock, a live connection...)
    """
    import dill

    if not callable(fn):
        raise ConfigurationError(
            f"from_function needs a function, got {fn!r} ({type(fn).__name__})."
        )
    header = {
        "format": PAYLOAD_FORMAT,
        "qualname": _qualname(fn),
        "sys_path": [os.path.abspath(p or os.curdir) for p in sys.path],
    }
    try:
        body = dill.dumps(fn, recurse=True)
    except Exception as err:
        raise ConfigurationError(
            f"Cannot serialise {_qualname(fn)} with dill: {type(err).__name__}: {err}. "
            "The function and everything it captures must be picklable; create open "
            "files, locks, clients or GPU tensors inside the function instead of "
            "capturing them."
        ) from err
    try:
        modules = _modules_loaded_by(body) | {getattr(fn, "__module__", None) or "__main__"}
    except Exception as err:
        raise ConfigurationError(
            f"{_qualname(fn)} was serialised but cannot be loaded back "
            f"({type(err).__name__}: {err}); the trial would fail the same way. "
            "Move what it captures into the function body."
        ) from err
    by_path = _modules_to_load_by_path(fn, modules)
    if by_path:
        header["format"] = PAYLOAD_FORMAT_WITH_MODULES
        header["modules"] = by_path
    return pickle.dumps(header, protocol=4) + body


def _modules_loaded_by(body: bytes) -> set[str]:
    """Load ``body`` back, and return the names of the modules that took:
    those of everything stored by reference, and modules stored themselves."""
    import io

    import dill
    from dill._dill import _import_module

    names: set[str] = set()

    def import_module(name, safe=False):
        names.add(name)
        return _import_module(name, safe)

    class Recorder(dill.Unpickler):
        def find_class(self, module, name):
            if module == "dill._dill" and name == "_import_module":
                return import_module
            names.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(body)).load()
    return names


def _modules_to_load_by_path(fn, names: set[str]) -> list[tuple[str, str, bool]]:
    """The modules among ``names`` a fresh interpreter cannot import by name,
    as ``(name, file, is_package)``, parents first.

    :raises ConfigurationError: Such a module has no file to load it from
    """
    found = {}
    for name in sorted(names):
        if _importable_by_name(name):
            continue
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if module is None or not file or not os.path.isfile(file):
            raise ConfigurationError(
                f"{_qualname(fn)} needs the module {name!r}, which cannot be imported in "
                "the trial: it is not on sys.path, and it has no file to load it from "
                "(it was created at run time). Define the function (and what it uses) in "
                "an importable module (one on sys.path or installed), or in __main__ (the "
                "script you run, or a notebook), whose functions are serialised by value."
            )
        is_package = getattr(module, "__path__", None) is not None
        found[name] = (name, os.path.abspath(file), is_package)
    return [found[n] for n in sorted(found, key=lambda n: (n.count("."), n))]


def _importable_by_name(name: str) -> bool:
    """Whether a fresh interpreter with this one's ``sys.path`` imports ``name``
    (its top-level package) from the file it came from here."""
    if name in ("__main__", "builtins", "__builtin__"):
        return True
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    loaded = sys.modules.get(top)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(top, None)
        except Exception:  # noqa: BLE001 -- a finder that cannot answer
            continue
        if spec is None:
            continue
        here = getattr(loaded, "__file__", None)
        if loaded is None or here is None or spec.origin is None or not os.path.exists(spec.origin):
            return True
        # the name finds a file, but not the one this module was loaded from
        return os.path.realpath(spec.origin) == os.path.realpath(here)
    return False


def write_payload(payload: bytes, name: str, folder: str | os.PathLike | None = None) -> Path:
    """Write the payload once under a name derived from its digest.

    :param payload: From :func:`serialize_function`
    :param name: Readable part of the file name (the function's name)
    :param folder: Where to write; default ``<syne-tune results root>/.localx-functions``
        (``$SYNETUNE_FOLDER`` or ``~/syne-tune``), where a tuner resumed later
        finds it again
    :return: The file; an existing file with the same digest is reused
    """
    if folder is None:
        from syne_tune.util import experiment_path

        folder = experiment_path() / PAYLOAD_FOLDER_NAME
    folder = Path(folder).expanduser().absolute()
    digest = hashlib.sha256(payload).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") or "function"
    path = folder / f"{stem}-{digest[:12]}{PAYLOAD_SUFFIX}"
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except OSError as err:
        raise ConfigurationError(
            f"Cannot write the function payload to {path} ({err.strerror or err}); pass "
            "payload_dir=<a writable folder> to from_function."
        ) from err
    return path


def backend_from_function(
    backend_class: type,
    fn: Callable,
    payload_dir: str | os.PathLike | None = None,
    **backend_options: Any,
):
    """Build ``backend_class`` so that each trial calls ``fn``.

    :param backend_class: :class:`~syne_tune_localx.backend.LocalXBackend` or a subclass
    :param fn: The function to tune
    :param payload_dir: Folder for the payload file (see :func:`write_payload`)
    :param backend_options: Any option of the backend except ``entry_point``
        and ``binary`` (the runner takes their place); ``pass_args_as_json``
        is always ``True`` so that every value keeps its type
    :return: The backend
    """
    for key in _NOT_ALLOWED:
        if key in backend_options:
            raise ConfigurationError(
                f"from_function sets {key!r} itself (the trial runs "
                f"`python -m {RUNNER_MODULE}`); remove {key}= from the call."
            )
    if backend_options.get("pass_args_as_json", True) is not True:
        raise ConfigurationError(
            "from_function passes the configuration as JSON so that every value "
            "keeps its type; remove pass_args_as_json=False."
        )
    backend_options["pass_args_as_json"] = True
    payload = serialize_function(fn)
    path = write_payload(payload, getattr(fn, "__name__", "function"), payload_dir)
    digest = hashlib.sha256(payload).hexdigest()
    binary = [sys.executable, "-m", RUNNER_MODULE, f"--{SHA_ARG}={digest}"]
    return backend_class(entry_point=str(path), binary=binary, **backend_options)


def _qualname(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}"
