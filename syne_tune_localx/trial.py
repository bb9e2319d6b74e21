"""Helpers for the training script side of a trial. Standard library only, so a
trial that imports them starts fast (``from syne_tune import Reporter`` pulls in
pandas, about 0.6 s per trial start).

How :class:`~syne_tune_localx.backend.LocalXBackend` passes a configuration:

* Command-line mode (default): one argument ``--<key>=<value>`` per key, the key
  as written in the config space. ``str`` values arrive verbatim (spaces and
  leading dashes included), ``int`` as ``str(value)``, ``float`` as ``repr``
  (exact round trip, ``inf`` and ``nan`` included). ``True`` is sent as
  ``True`` and ``False`` as the *empty string*, so ``argparse``'s
  ``type=bool`` reads both right; :func:`parse_bool` reads them too. A key whose
  value is ``None`` is left out, so the script sees its argparse default
  (declare ``default=None``). Lists and dicts need JSON mode.
* JSON mode (``pass_args_as_json=True``): the whole configuration is written to
  ``config.json`` in the trial folder and passed as
  ``--st_config_json_filename=<path>``; every JSON value (lists, dicts, ``None``)
  arrives as is.
* Both modes pass ``--st_checkpoint_dir=<trial folder>/checkpoints``.

:func:`read_config` reads the configuration either way.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

CHECKPOINT_DIR_ARG = "st_checkpoint_dir"
CONFIG_JSON_ARG = "st_config_json_filename"
METRIC_TAG = "tune-metric"

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"", "false", "0", "no", "n", "off", "f", "none"}


def parse_bool(text: str) -> bool:
    """``argparse`` type for booleans sent by the backend (and typed by hand).

    :param text: ``"True"``/``""`` as sent by the backend, or ``true/false``,
        ``1/0``, ``yes/no``, ``on/off`` in any case
    :return: the boolean
    """
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a boolean; use one of true/false, 1/0, yes/no, on/off"
    )


def read_config(
    parser: argparse.ArgumentParser | None = None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Read the trial's configuration, whichever way the backend passed it.

    :param parser: The script's own parser declaring one option per
        hyperparameter (with types). ``--st_checkpoint_dir`` and
        ``--st_config_json_filename`` are added if missing. Without a parser,
        every ``--key=value`` argument is returned as a string.
    :param argv: Arguments to parse, defaults to ``sys.argv[1:]``
    :return: The configuration as a dict; it always holds ``st_checkpoint_dir``
        (``None`` if the backend passed none). In JSON mode the values come from
        the JSON file and take precedence over command-line defaults.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if parser is None:
        config = _parse_generic(argv)
    else:
        known = {a.dest for a in parser._actions}
        for name in (CHECKPOINT_DIR_ARG, CONFIG_JSON_ARG):
            if name not in known:
                parser.add_argument(f"--{name}", type=str, default=None)
        config = vars(parser.parse_args(argv))
    config.setdefault(CHECKPOINT_DIR_ARG, None)
    json_path = config.pop(CONFIG_JSON_ARG, None)
    if json_path:
        with open(json_path) as f:
            config.update(json.load(f))
    return config


def _parse_generic(argv: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise SystemExit(f"read_config: unexpected argument {token!r}; expected --key=value")
        if "=" in token:
            key, value = token[2:].split("=", 1)
        elif i + 1 < len(argv):
            key, value = token[2:], argv[i + 1]
            i += 1
        else:
            raise SystemExit(f"read_config: option {token!r} has no value")
        config[key] = value
        i += 1
    return config


class Reporter:
    """Report metrics to the tuner: a light stand-in for ``syne_tune.Reporter``
    that writes the same ``[tune-metric]: {...}`` lines (with
    ``st_worker_timestamp``, ``st_worker_time`` and ``st_worker_iter``) without
    importing syne-tune.

    .. code-block:: python

       report = Reporter()
       report(epoch=1, accuracy=0.9)
    """

    def __init__(self, add_time: bool = True):
        self.add_time = add_time
        self.start = time.perf_counter()
        self.iter = 0

    def __call__(self, **metrics) -> None:
        bad = [k for k in metrics if k.startswith("st_")]
        if bad:
            raise ValueError(f"metric names {bad} start with 'st_', which is reserved; rename them")
        missing = [k for k, v in metrics.items() if v is None]
        if missing:
            raise ValueError(f"metrics {missing} are None; report a number or leave them out")
        metrics["st_worker_timestamp"] = time.time()
        if self.add_time:
            metrics["st_worker_time"] = time.perf_counter() - self.start
        metrics["st_worker_iter"] = self.iter
        self.iter += 1
        line = json.dumps(metrics, default=_to_builtin)
        sys.stdout.write(f"[{METRIC_TAG}]: {line}\n")
        sys.stdout.flush()


def _to_builtin(value):
    # numpy scalars and arrays without importing numpy
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
