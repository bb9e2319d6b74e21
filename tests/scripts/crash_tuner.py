"""A small Tuner run, started by the tests as a separate process and killed.

Usage: ``crash_tuner.py ENTRY_POINT PID_DIR GRACE``; ``SYNETUNE_FOLDER`` says
where the experiment ``localx-crash`` goes. Trials run long (until the test
kills this process), ignore SIGTERM and write their pids to PID_DIR. The tuner
saves itself every 0.2 s, so ``Tuner.load`` can resume it.
"""

import logging
import sys

from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import uniform
from syne_tune.optimizer.baselines import RandomSearch

from syne_tune_localx import LocalXBackend

N_WORKERS = 2


def main(entry_point, pid_dir, grace):
    logging.basicConfig(level=logging.WARNING)
    config_space = {
        "x": uniform(0.0, 1.0),
        "epochs": 100000,
        "epoch_time": 0.1,
        "on_term": "ignore",
        "pid_dir": pid_dir,
    }
    tuner = Tuner(
        trial_backend=LocalXBackend(entry_point=entry_point, stop_grace_period=float(grace)),
        scheduler=RandomSearch(config_space, metrics=["loss"], random_seed=1),
        stop_criterion=StoppingCriterion(max_num_trials_completed=2),
        n_workers=N_WORKERS,
        sleep_time=0.1,
        results_update_interval=0.2,
        print_update_interval=1000.0,
        tuner_name="localx-crash",
        suffix_tuner_name=False,
    )
    print(f"tuner path {tuner.tuner_path}", flush=True)
    tuner.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
