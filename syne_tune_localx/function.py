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
        dill.loads(body)
    except Exception as err:
        raise ConfigurationError(
            f"{_qualname(fn)} was serialised but cannot be loaded back "
            f"({type(err).__name__}: {err}); the trial would fail the same way. "
            "Move what it captures into the function body."
        ) from err
    return pickle.dumps(header, protocol=4) + body


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
