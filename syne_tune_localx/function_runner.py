"""The trial side of :meth:`LocalXBackend.from_function
<syne_tune_localx.backend.LocalXBackend.from_function>`.

Run as ``python -m syne_tune_localx.function_runner --localx-sha256=<digest>
<payload> --st_config_json_filename=... --st_checkpoint_dir=...``. It checks
the payload's SHA-256 against ``<digest>`` before unpickling anything, loads
the function, and calls it with the trial's configuration:

* every configuration key becomes a keyword argument (``fn(**config)``);
* a parameter named ``report`` receives a
  :class:`~syne_tune_localx.trial.Reporter`: call ``report(epoch=1, loss=0.3)``
  for each result;
* a parameter named ``checkpoint_dir`` receives the trial's checkpoint folder
  (a ``str``), where a paused or PBT-copied trial finds what it saved;
* a returned ``dict`` is reported as the trial's last result, so
  ``return {"loss": loss}`` is all a single-result function needs.

A stop or pause sends SIGTERM; it raises :class:`TrialStopped` inside the
function (a ``BaseException``, so ``except Exception`` does not swallow it), so
``with`` and ``finally`` blocks run within the backend's grace period. A
function may install its own SIGTERM handler instead.

Exit status: 0 after a normal return, 2 for a payload or calling problem
(message on stderr), 143 after SIGTERM; an exception of the function
propagates as usual (status 1).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import pickle
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syne_tune_localx.trial import CHECKPOINT_DIR_ARG, Reporter, read_config

SHA_ARG = "localx-sha256"  # same as syne_tune_localx.function.SHA_ARG
REPORT_PARAM = "report"
CHECKPOINT_PARAM = "checkpoint_dir"
SUPPORTED_FORMATS = (1, 2)


class TrialStopped(BaseException):
    """Raised inside the function when the backend stops or pauses the trial."""


class RunnerError(Exception):
    """The payload or the call cannot work; reported without a traceback."""


def load_payload(path: str | Path, expected_sha256: str):
    """Load the function from a payload file, after checking its digest.

    :param path: The payload file
    :param expected_sha256: Hex digest the backend computed when writing it
    :return: ``(function, header)``
    :raises RunnerError: Missing file, digest mismatch, unknown format, or a
        function other than the one recorded in the header
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RunnerError(
            f"cannot read the function payload {path} ({err.strerror or err}); it is "
            "written by LocalXBackend.from_function, do not delete it while tuning"
        ) from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise RunnerError(
            f"the function payload {path} has SHA-256 {actual}, but the backend wrote "
            f"{expected_sha256}: the file changed after from_function created it. "
            "Call from_function again to write it afresh"
        )
    stream = io.BytesIO(data)
    header = pickle.load(stream)
    if not isinstance(header, dict) or header.get("format") not in SUPPORTED_FORMATS:
        raise RunnerError(
            f"{path} is not a function payload this version understands (format "
            f"{header.get('format') if isinstance(header, dict) else '?'}); install the "
            "same syne-tune-localx in the tuner and the trials"
        )
    # modules the function refers to by name are imported while unpickling
    for entry in header.get("sys_path", []):
        if entry not in sys.path:
            sys.path.append(entry)
    for name, file, is_package in header.get("modules", []):
        _load_module_from_file(name, file, is_package)
    import dill

    fn = dill.load(stream)
    qualname = f"{getattr(fn, '__module__', None) or '?'}." + (
        getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    )
    if not callable(fn) or qualname != header.get("qualname"):
        raise RunnerError(
            f"{path} holds {qualname}, but its header names {header.get('qualname')}; "
            "the payload is inconsistent, call from_function again"
        )
    return fn, header


def _load_module_from_file(name: str, file: str, is_package: bool) -> None:
    """Load a module the tuner had loaded by file path (not importable by name)."""
    import importlib.util

    if name in sys.modules:
        return
    try:
        spec = importlib.util.spec_from_file_location(
            name, file, submodule_search_locations=[str(Path(file).parent)] if is_package else None
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise RunnerError(
            f"cannot load the module {name!r} from {file}, where the tuner loaded it "
            f"from ({type(err).__name__}: {err}); the function to tune needs it"
        ) from err


def call_arguments(fn, config: dict[str, Any], checkpoint_dir: str | None, report) -> dict:
    """Keyword arguments for ``fn``: the configuration, plus ``report`` and
    ``checkpoint_dir`` when ``fn`` names them.

    :raises RunnerError: A configuration key ``fn`` does not take, a required
        parameter no key provides, or a key clashing with ``report`` or
        ``checkpoint_dir``
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(config)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {}
    for key, value in config.items():
        if key in (REPORT_PARAM, CHECKPOINT_PARAM) and key in params:
            raise RunnerError(
                f"the config space has a key {key!r}, which is also the name of the "
                f"{key} argument the runner passes to {fn.__name__}; rename the hyperparameter"
            )
        if key in params or takes_any:
            kwargs[key] = value
        else:
            raise RunnerError(
                f"{fn.__name__}{inspect.signature(fn)} takes no argument {key!r}, but the "
                f"config space has that key; add a parameter {key} (or **kwargs) to the function"
            )
    if REPORT_PARAM in params:
        kwargs[REPORT_PARAM] = report
    if CHECKPOINT_PARAM in params:
        kwargs[CHECKPOINT_PARAM] = checkpoint_dir
    missing = [
        name
        for name, p in params.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in kwargs
    ]
    if missing:
        raise RunnerError(
            f"{fn.__name__}{inspect.signature(fn)} needs {', '.join(map(repr, missing))}, "
            "which the config space does not provide; add them to the config space or "
            "give them defaults"
        )
    return kwargs


def _on_sigterm(signum, frame):
    # once is enough: a second SIGTERM during cleanup must not interrupt it again
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TrialStopped()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prefix = f"--{SHA_ARG}="
    if len(argv) < 2 or not argv[0].startswith(prefix):
        print(
            f"usage: python -m syne_tune_localx.function_runner {prefix}<hex> PAYLOAD "
            "[trial arguments]; started by LocalXBackend.from_function",
            file=sys.stderr,
        )
        return 2
    expected, payload, rest = argv[0][len(prefix):], argv[1], argv[2:]
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        fn, _ = load_payload(payload, expected)
        config = read_config(argv=rest)
        checkpoint_dir = config.pop(CHECKPOINT_DIR_ARG, None)
        report = Reporter()
        kwargs = call_arguments(fn, config, checkpoint_dir, report)
    except RunnerError as err:
        print(f"syne_tune_localx.function_runner: {err}", file=sys.stderr)
        return 2
    except TrialStopped:
        return 128 + signal.SIGTERM
    try:
        result = fn(**kwargs)
    except TrialStopped:
        print("syne_tune_localx.function_runner: stopped by SIGTERM", file=sys.stderr)
        return 128 + signal.SIGTERM
    if isinstance(result, Mapping):
        if result:
            report(**dict(result))
    elif result is not None:
        print(
            f"syne_tune_localx.function_runner: {getattr(fn, '__name__', 'the function')} "
            f"returned {result!r}; return a dict of metrics such as {{'loss': 0.1}}, or "
            "None after calling report(...)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
