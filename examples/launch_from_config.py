"""Run an HPO experiment described by a YAML file, the trial backend selected by
name (``backend: {name: localx, options: {...}}``).

::

    python examples/launch_from_config.py examples/digits_asha.yaml
    python examples/launch_from_config.py examples/digits_asha.yaml --max-wallclock-time 30

See ``digits_asha.yaml`` for the keys. The backend is built by
:func:`syne_tune_localx.registry.make_backend` from the same file, so any
registered backend name works (``localx``, or syne-tune's ``local``). The last
line printed is ``BEST_RESULT {json}``.
"""

import argparse
import importlib
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from syne_tune_localx.registry import make_backend

HERE = Path(__file__).parent
DEFAULT_CONFIG = HERE / "digits_asha.yaml"
# schedulers that can be named in the file, as "module:attribute"
SCHEDULERS = {
    name: f"syne_tune.optimizer.baselines:{name}"
    for name in ("RandomSearch", "ASHA", "BOHB", "BORE", "TPE", "REA", "CQR", "ASHABORE")
}
SCHEDULERS["PopulationBasedTraining"] = (
    "syne_tune.optimizer.schedulers.pbt:PopulationBasedTraining"
)
# functions of syne_tune.config_space a `domain:` may name
DOMAINS = (
    "uniform", "loguniform", "randint", "lograndint", "choice", "ordinal",
    "logordinal", "finrange", "logfinrange",
)
SECTIONS = ("backend", "scheduler", "config_space", "stop_criterion", "tuner")


class ConfigError(ValueError):
    """The experiment file is malformed; the message says where."""


def _load(path: Path) -> dict[str, Any]:
    with open(path, "r", encoding="utf-8") as f:
        document = yaml.safe_load(f)
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a mapping with the keys {', '.join(SECTIONS)}")
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown} in {path}; allowed: {list(SECTIONS)}")
    for key in ("backend", "scheduler", "config_space"):
        if key not in document:
            raise ConfigError(f"{path} has no {key!r} section")
    return document


def _import(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def build_config_space(section: dict[str, Any]) -> dict[str, Any]:
    """Constants stay as they are; ``{domain: name, **kwargs}`` becomes
    ``syne_tune.config_space.<name>(**kwargs)``."""
    from syne_tune import config_space as cs

    space = {}
    for key, value in section.items():
        if isinstance(value, dict) and "domain" in value:
            kwargs = dict(value)
            domain = kwargs.pop("domain")
            if domain not in DOMAINS:
                raise ConfigError(
                    f"config_space.{key}: unknown domain {domain!r}; use one of {list(DOMAINS)}"
                )
            try:
                space[key] = getattr(cs, domain)(**kwargs)
            except TypeError as err:
                raise ConfigError(f"config_space.{key}: bad arguments for {domain}: {err}") from err
        else:
            space[key] = value
    return space


def build_scheduler(section: dict[str, Any], config_space: dict[str, Any]):
    name = section.get("name")
    if name not in SCHEDULERS:
        raise ConfigError(f"scheduler.name {name!r} is unknown; use one of {sorted(SCHEDULERS)}")
    return _import(SCHEDULERS[name])(config_space, **(section.get("options") or {}))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, default=DEFAULT_CONFIG,
                        help=f"experiment file (default {DEFAULT_CONFIG.name})")
    parser.add_argument("--max-wallclock-time", type=float, default=None,
                        help="overrides stop_criterion.max_wallclock_time")
    parser.add_argument("--max-trials", type=int, default=None,
                        help="overrides stop_criterion.max_num_trials_started")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO)
    document = _load(args.config)

    # the same file: make_backend reads its `backend:` entry and resolves a
    # relative entry_point against the file's folder
    backend = make_backend(args.config)

    from syne_tune import StoppingCriterion, Tuner

    config_space = build_config_space(document["config_space"])
    scheduler = build_scheduler(document["scheduler"], config_space)
    stop = dict(document.get("stop_criterion") or {})
    if args.max_wallclock_time is not None:
        stop["max_wallclock_time"] = args.max_wallclock_time
    if args.max_trials is not None:
        stop["max_num_trials_started"] = args.max_trials
    if not stop:
        raise ConfigError("no stop criterion: set stop_criterion in the file or --max-wallclock-time")
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(**stop),
        **(document.get("tuner") or {}),
    )
    tuner.run()

    metric = scheduler.metric_names()[0]
    if tuner.tuning_status.overall_metric_statistics.count == 0:
        print(f"no trial reported {metric!r}; see the trial logs in {tuner.tuner_path}")
        return 1
    trial_id, config = tuner.best_config()
    stats = tuner.tuning_status.trial_metric_statistics[trial_id]
    value = stats.min_metrics[metric] if scheduler.metric_mode() == "min" else stats.max_metrics[metric]
    print(f"best {metric} {value:.4f} by trial {trial_id} with configuration {config}")
    best = {
        "trial_id": trial_id,
        metric: value,
        "config": config,
        "backend": str(backend),
        "results_folder": str(tuner.tuner_path),
    }
    print("BEST_RESULT " + json.dumps(best, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
