"""Run an HPO experiment described by a YAML file, the trial backend selected by
name (``backend: {name: localx, options: {...}}``) from the entry-point registry.

::

    python examples/launch_from_config.py examples/digits_asha.yaml
    python examples/launch_from_config.py examples/digits_asha.yaml --max-wallclock-time 30

The file format is the one of ``syne-tune-localx run`` (see the README); this
script shows the same steps in a few lines of Python. The last line printed is
``BEST_RESULT {json}``.
"""

import argparse
import json
import logging
from pathlib import Path

from syne_tune import Tuner

from syne_tune_localx.experiment import load_experiment_file
from syne_tune_localx.registry import make_backend

DEFAULT_CONFIG = Path(__file__).parent / "digits_asha.yaml"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, default=DEFAULT_CONFIG,
                        help=f"experiment file (default {DEFAULT_CONFIG.name})")
    parser.add_argument("--max-wallclock-time", type=float, default=None,
                        help="overrides stop.max_wallclock_time")
    parser.add_argument("--max-trials", type=int, default=None,
                        help="overrides stop.max_num_trials_started")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO)
    overrides = []
    if args.max_wallclock_time is not None:
        overrides.append(f"stop.max_wallclock_time={args.max_wallclock_time}")
    if args.max_trials is not None:
        overrides.append(f"stop.max_num_trials_started={args.max_trials}")
    experiment = load_experiment_file(args.config, overrides)

    # selection by name: the registry reads the file's `backend:` entry and
    # resolves a relative entry_point against the file's folder
    backend = make_backend(args.config)
    scheduler = experiment.make_scheduler()
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=experiment.make_stop_criterion(),
        n_workers=experiment.n_workers,
        tuner_name=experiment.name,
        **experiment.tuner_options,
    )
    tuner.run()

    metric = experiment.metric_names[0]
    if tuner.tuning_status.overall_metric_statistics.count == 0:
        print(f"no trial reported {metric!r}; see the trial logs in {tuner.tuner_path}")
        return 1
    trial_id, config = tuner.best_config()
    stats = tuner.tuning_status.trial_metric_statistics[trial_id]
    value = stats.min_metrics[metric] if experiment.mode == "min" else stats.max_metrics[metric]
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
