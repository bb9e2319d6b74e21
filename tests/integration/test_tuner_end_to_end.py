"""The real syne-tune Tuner with LocalXBackend, on a script written for LocalBackend."""

import json
from pathlib import Path

import pandas as pd
import pytest
from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import choice, uniform
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.results_callback import StoreResultsCallback
from syne_tune.tuner_callback import TunerCallback

from syne_tune_localx import LocalXBackend

SCRIPT = Path(__file__).parents[1] / "scripts" / "seed_style_train.py"
CONFIG_SPACE = {"x": uniform(-1, 1), "tag": choice(["a b", "-dash", "q'uote"]), "epochs": 4}


class RecordResults(TunerCallback):
    def __init__(self):
        self.results = []

    def on_trial_result(self, trial, status, result, decision):
        self.results.append((trial.trial_id, result["epoch"], result["st_worker_iter"]))


@pytest.mark.slow
def test_random_search_runs_to_completion(results_root):
    recorder = RecordResults()
    backend = LocalXBackend(entry_point=str(SCRIPT))
    tuner = Tuner(
        trial_backend=backend,
        scheduler=RandomSearch(CONFIG_SPACE, metrics=["loss"], do_minimize=True, random_seed=1),
        stop_criterion=StoppingCriterion(max_num_trials_completed=4),
        n_workers=2,
        sleep_time=0.05,
        callbacks=[recorder, StoreResultsCallback()],
        save_tuner=False,
    )
    tuner.run()

    statuses = {t: r.status for t, r in backend._trial_dict.items()}
    completed = [t for t, s in statuses.items() if s == "Completed"]
    assert len(completed) >= 4
    # every metric of a completed trial arrived exactly once, in order
    for trial_id in completed:
        seen = [(e, i) for t, e, i in recorder.results if t == trial_id]
        assert seen == [(e, e - 1) for e in range(1, 5)], (trial_id, seen)
    # the script got every value intact and the layout users rely on exists
    for trial_id in completed:
        folder = backend.trial_path(trial_id)
        assert folder == Path(tuner.tuner_path) / str(trial_id)
        config = json.loads((folder / "config.json").read_text())
        seen = json.loads((folder / "checkpoints" / "seen.json").read_text())
        assert seen["x"] == config["x"] and seen["tag"] == config["tag"]
        assert seen["st_checkpoint_dir"] == str(folder / "checkpoints")
        assert (folder / "std.out").exists() and (folder / "std.err").exists()
        record = backend.process_record(trial_id)
        assert record["exit_code"] == 0 and record["cause"] == "exited"
    # syne-tune's own results file holds the same trials
    df = pd.read_csv(Path(tuner.tuner_path) / "results.csv.zip")
    assert set(completed) <= set(df["trial_id"])
    best_id, best_config = tuner.best_config()
    assert best_config["x"] == backend._trial_dict[best_id].config["x"]
    # nothing is left running
    assert backend.busy_trial_ids() == []
