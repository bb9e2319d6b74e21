"""Tuning Python functions through a real syne-tune Tuner with
:meth:`LocalXBackend.from_function`."""

import json
import subprocess
import sys
import textwrap

import pytest
from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import uniform
from syne_tune.optimizer.baselines import RandomSearch

from syne_tune_localx import LocalXBackend


@pytest.mark.slow
def test_tuner_tunes_a_closure_that_captures_a_local_variable(results_root):
    target = 0.25  # captured: the trials can only know it through the closure

    def objective(x, epochs, report, checkpoint_dir):
        for epoch in range(1, epochs + 1):
            report(epoch=epoch, loss=(x - target) ** 2 / epoch)
        assert checkpoint_dir.endswith("checkpoints")

    backend = LocalXBackend.from_function(objective, num_gpus_per_trial=0)
    tuner = Tuner(
        trial_backend=backend,
        scheduler=RandomSearch({"x": uniform(-1, 1), "epochs": 2}, metrics=["loss"], random_seed=0),
        stop_criterion=StoppingCriterion(max_num_trials_completed=3),
        n_workers=2,
        sleep_time=0.1,
        save_tuner=True,
    )
    tuner.run()

    completed = [t for t in backend._trial_dict.values() if t.status == "Completed"]
    assert len(completed) >= 3
    for trial in completed:
        losses = [m["loss"] for m in trial.metrics]
        expected = [(trial.config["x"] - target) ** 2 / e for e in (1, 2)]
        assert losses == pytest.approx(expected)
    # the payload lives below the results root, not in the working folder
    assert (results_root / ".localx-functions").is_dir()
    assert backend.busy_trial_ids() == []


@pytest.mark.slow
def test_function_defined_in_main_script(tmp_path):
    script = tmp_path / "tune_main.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, math, sys
            from syne_tune import StoppingCriterion, Tuner
            from syne_tune.config_space import choice, randint
            from syne_tune.optimizer.baselines import RandomSearch
            from syne_tune_localx import LocalXBackend

            WEIGHTS = {"a": 1.0, "b": 2.0}

            def helper(n):
                return math.sqrt(n)

            def train(n, kind):
                return {"score": helper(n) * WEIGHTS[kind]}

            if __name__ == "__main__":
                backend = LocalXBackend.from_function(train, num_gpus_per_trial=0)
                tuner = Tuner(
                    trial_backend=backend,
                    scheduler=RandomSearch(
                        {"n": randint(1, 9), "kind": choice(["a", "b"])},
                        metrics=["score"], do_minimize=False, random_seed=1,
                    ),
                    stop_criterion=StoppingCriterion(max_num_trials_completed=2),
                    n_workers=2, sleep_time=0.1,
                )
                tuner.run()
                out = [
                    (t.config, [m["score"] for m in t.metrics])
                    for t in backend._trial_dict.values() if t.status == "Completed"
                ]
                print("OUT " + json.dumps(out))
            """
        )
    )
    env = {"SYNETUNE_FOLDER": str(tmp_path / "st"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("OUT ")][-1]
    out = json.loads(line[4:])
    assert len(out) >= 2
    for config, scores in out:
        weight = {"a": 1.0, "b": 2.0}[config["kind"]]
        assert scores == pytest.approx([config["n"] ** 0.5 * weight])
