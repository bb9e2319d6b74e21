"""Tune an SGD classifier on the digits data set with ASHA, two trials at a time.

A plain syne-tune launcher: the only difference to one written for syne-tune's
own ``LocalBackend`` is the backend class (imported from ``syne_tune_localx``
instead of ``syne_tune.backend``).

Results go to ``~/syne-tune/<tuner name>``, or below the folder named by the
environment variable ``SYNETUNE_FOLDER``. Example::

    python examples/launch_digits_asha.py --max-wallclock-time 60

The last line printed is ``BEST_RESULT {json}`` with the best trial, its
validation accuracy, its configuration and the results folder.
"""

import argparse
import json
import logging
from pathlib import Path

from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import choice, loguniform
from syne_tune.optimizer.baselines import ASHA

from syne_tune_localx import LocalXBackend

ENTRY_POINT = Path(__file__).parent / "training_scripts" / "digits_sgd.py"
METRIC = "accuracy"
TIME_ATTR = "epoch"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-wallclock-time", type=float, default=120.0,
                        help="stop tuning after this many seconds (default 120)")
    parser.add_argument("--max-trials", type=int, default=None,
                        help="stop tuning once this many trials have started")
    parser.add_argument("--max-epochs", type=int, default=20,
                        help="epochs of a trial that is never stopped early (ASHA's max_t)")
    parser.add_argument("--epoch-seconds", type=float, default=0.05,
                        help="extra seconds per epoch, so that ASHA sees trials progress")
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tuner-name", type=str, default="digits-asha")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO)

    config_space = {
        "epochs": args.max_epochs,
        "alpha": loguniform(1e-6, 1e-1),
        "eta0": loguniform(1e-4, 1.0),
        "learning_rate": choice(["optimal", "constant", "invscaling", "adaptive"]),
        "loss": choice(["hinge", "log_loss", "modified_huber"]),
        "shuffle": choice([True, False]),
        "epoch_seconds": args.epoch_seconds,
    }
    scheduler = ASHA(
        config_space,
        metric=METRIC,
        time_attr=TIME_ATTR,
        max_t=args.max_epochs,
        do_minimize=False,
        grace_period=2,
        reduction_factor=3,
        random_seed=args.seed,
    )
    tuner = Tuner(
        trial_backend=LocalXBackend(entry_point=str(ENTRY_POINT)),
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(
            max_wallclock_time=args.max_wallclock_time,
            max_num_trials_started=args.max_trials,
        ),
        n_workers=args.n_workers,
        sleep_time=0.2,
        results_update_interval=5.0,
        tuner_name=args.tuner_name,
    )
    tuner.run()

    if tuner.tuning_status.overall_metric_statistics.count == 0:
        print(f"no trial reported {METRIC!r}; see the trial logs in {tuner.tuner_path}")
        return 1
    trial_id, config = tuner.best_config()
    accuracy = tuner.tuning_status.trial_metric_statistics[trial_id].max_metrics[METRIC]
    print(f"best {METRIC} {accuracy:.4f} by trial {trial_id} with configuration {config}")
    best = {
        "trial_id": trial_id,
        METRIC: accuracy,
        "config": config,
        "results_folder": str(tuner.tuner_path),
    }
    print("BEST_RESULT " + json.dumps(best, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
