"""Population-based training (PBT) of an SGD classifier on the digits data set.

Every ``--perturbation-interval`` epochs, PBT compares the running trials: one
in the lower quantile is stopped and replaced by a new trial that starts from
the checkpoint of a trial in the upper quantile (the backend copies that
trial's checkpoint folder) with perturbed hyperparameters. The training script
continues from the copied epoch and says so in its log (``resumed from epoch N
of trial T``); this launcher lists those lines at the end.

A plain syne-tune launcher: the only difference to one written for syne-tune's
own ``LocalBackend`` is the backend class. Example::

    python examples/launch_pbt.py --max-wallclock-time 60

The last line printed is ``BEST_RESULT {json}``.
"""

import argparse
import json
import logging
from pathlib import Path

from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import choice, loguniform
from syne_tune.optimizer.schedulers.pbt import PopulationBasedTraining

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
    parser.add_argument("--max-epochs", type=int, default=15,
                        help="epochs after which a member of the population is done (max_t)")
    parser.add_argument("--perturbation-interval", type=int, default=2,
                        help="epochs between two exploit/explore steps of a trial")
    parser.add_argument("--population-size", type=int, default=4)
    parser.add_argument("--epoch-seconds", type=float, default=0.15,
                        help="extra seconds per epoch, so that PBT acts on running trials")
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tuner-name", type=str, default="digits-pbt")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO)

    config_space = {
        "epochs": args.max_epochs,
        "alpha": loguniform(1e-6, 1e-1),
        "eta0": loguniform(1e-4, 1.0),
        "learning_rate": choice(["constant", "adaptive"]),
        "loss": choice(["hinge", "log_loss", "modified_huber"]),
        "shuffle": True,
        "epoch_seconds": args.epoch_seconds,
    }
    scheduler = PopulationBasedTraining(
        config_space,
        metric=METRIC,
        time_attr=TIME_ATTR,
        max_t=args.max_epochs,
        do_minimize=False,
        population_size=args.population_size,
        perturbation_interval=args.perturbation_interval,
        random_seed=args.seed,
    )
    backend = LocalXBackend(entry_point=str(ENTRY_POINT))
    tuner = Tuner(
        trial_backend=backend,
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

    # which trials continued from a checkpoint (their own or a copied one)
    for trial_id in sorted(backend.trial_ids):
        for line in backend.stdout(trial_id):
            if "resumed from epoch" in line:
                print(f"  {line.strip()}")

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
