"""The examples under ``examples/`` run, on real data, and do what they claim.

* ``training_scripts/digits_sgd.py`` alone: continues from its checkpoint,
  ends cleanly on SIGTERM with the checkpoint of its last epoch, and continues
  after a pause and resume through :class:`LocalXBackend`.
* the launchers, each as a subprocess with a short budget and
  ``SYNETUNE_FOLDER`` in the test's folder: ASHA, PBT (trials continue from
  copied checkpoints) and the YAML-driven launcher (backend selected by name).

The launchers print ``BEST_RESULT {json}`` as their last line.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "training_scripts" / "digits_sgd.py"
METRIC_PREFIX = "[tune-metric]: "
RESUMED = "resumed from epoch "


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def metrics_of(text: str) -> list[dict]:
    return [
        json.loads(line[len(METRIC_PREFIX):])
        for line in text.splitlines()
        if line.startswith(METRIC_PREFIX)
    ]


def resumed_from(text: str) -> list[tuple[int, str]]:
    """``(epoch, trial)`` of each ``resumed from epoch N of trial T`` line."""
    found = []
    for line in text.splitlines():
        if RESUMED in line:
            words = line.split(RESUMED, 1)[1].split()
            found.append((int(words[0]), words[3]))
    return found


def load_checkpoint(checkpoint_dir: Path) -> dict:
    with open(checkpoint_dir / "checkpoint.pkl", "rb") as f:
        return pickle.load(f)


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_launcher(tmp_path: Path, *args: str, timeout: float = 150) -> dict:
    """Run a launcher in a folder of its own, results below ``tmp_path``;
    returns its ``BEST_RESULT`` with the output added as ``"output"``."""
    env = dict(os.environ, SYNETUNE_FOLDER=str(tmp_path / "results"))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=workdir,  # the launchers must not depend on the working folder
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and "checkpoints.copying" in output:
        pytest.fail(
            "backend bug: copy_checkpoint copies the checkpoint folder of a trial that is "
            "still running, and fails when a file in it is replaced meanwhile (the script "
            "writes checkpoint.pkl through a temporary file and os.replace):\n" + output[-3000:]
        )
    assert proc.returncode == 0, f"exit code {proc.returncode}:\n{output[-6000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BEST_RESULT ")]
    assert lines, f"no BEST_RESULT line:\n{output[-6000:]}"
    best = json.loads(lines[-1][len("BEST_RESULT "):])
    best["output"] = output
    return best


def trial_folders(results_folder: Path) -> dict[int, Path]:
    return {int(p.name): p for p in results_folder.iterdir() if p.is_dir() and p.name.isdigit()}


def check_results(best: dict, tmp_path: Path, min_trials: int) -> dict[int, Path]:
    """Checks shared by the launchers; returns the trial folders."""
    results = Path(best["results_folder"])
    assert results.parent == tmp_path / "results", "SYNETUNE_FOLDER was not used"
    assert (results / "results.csv.zip").is_file()
    trials = trial_folders(results)
    assert len(trials) >= min_trials, sorted(trials)
    assert best["accuracy"] > 0.8, best
    for trial_id, folder in trials.items():
        stdout = (folder / "std.out").read_text()
        stderr = (folder / "std.err").read_text()
        assert "Traceback" not in stderr, f"trial {trial_id} failed:\n{stderr[-3000:]}"
        config = json.loads((folder / "config.json").read_text())
        assert set(config) >= {"alpha", "eta0", "learning_rate", "loss", "shuffle", "epochs"}
        if stdout:  # empty only if stopped before the interpreter got going
            assert stdout.startswith(f"trial {trial_id}: "), stdout[:500]
        # the epochs a trial reports follow each other
        epochs = [m["epoch"] for m in metrics_of(stdout)]
        if epochs:
            assert epochs == list(range(epochs[0], epochs[0] + len(epochs))), (trial_id, epochs)
    # the best configuration is the one the best trial ran with
    best_folder = trials[best["trial_id"]]
    assert json.loads((best_folder / "config.json").read_text()) == best["config"]
    seen = results_seen_by_tuner(results)
    assert max(a for _, a in seen[best["trial_id"]]) == pytest.approx(best["accuracy"])
    # the tuner saw each trial's metrics as printed: in order, each once, no gap.
    # It may miss the last ones (printed after its stop decision, or after the
    # end of the experiment), never one in the middle.
    for trial_id, rows in seen.items():
        printed = [
            (m["epoch"], round(m["accuracy"], 9))
            for m in metrics_of((trials[trial_id] / "std.out").read_text())
        ]
        assert rows == printed[: len(rows)], (trial_id, rows, printed)
    return trials


def results_seen_by_tuner(results: Path) -> dict[int, list[tuple[int, float]]]:
    """``(epoch, accuracy)`` per trial from the Tuner's ``results.csv.zip``."""
    import pandas as pd

    frame = pd.read_csv(results / "results.csv.zip")
    return {
        int(trial_id): [(int(e), round(float(a), 9)) for e, a in zip(rows["epoch"], rows["accuracy"])]
        for trial_id, rows in frame.sort_values("st_tuner_time", kind="stable").groupby("trial_id")
    }


# ---------------------------------------------------------------------------
# the training script alone
# ---------------------------------------------------------------------------
def test_script_continues_from_its_checkpoint(tmp_path):
    checkpoints = tmp_path / "7" / "checkpoints"
    common = [f"--st_checkpoint_dir={checkpoints}", "--alpha=0.0001", "--loss=log_loss"]

    first = run_script("--epochs=3", "--shuffle=", *common)
    assert first.returncode == 0, first.stderr
    assert "starting from scratch" in first.stdout
    assert [m["epoch"] for m in metrics_of(first.stdout)] == [1, 2, 3]
    saved = load_checkpoint(checkpoints)
    assert saved["epoch"] == 3 and saved["trial"] == "7"
    assert saved["config"]["shuffle"] is False  # "" is False, as the backend sends it

    second = run_script("--epochs=6", "--shuffle=True", *common)
    assert second.returncode == 0, second.stderr
    assert resumed_from(second.stdout) == [(3, "7")]
    reported = metrics_of(second.stdout)
    assert [m["epoch"] for m in reported] == [4, 5, 6]
    assert all(0.8 < m["accuracy"] <= 1.0 for m in reported), reported
    saved = load_checkpoint(checkpoints)
    assert saved["epoch"] == 6 and saved["config"]["shuffle"] is True
    assert [h["epoch"] for h in saved["history"]] == [1, 2, 3, 4, 5, 6]
    assert not [p for p in checkpoints.iterdir() if p.name != "checkpoint.pkl"], "temp file left"

    # nothing left to train: it still reports where it stands (a Tuner fails a
    # trial that completes without any metric)
    third = run_script("--epochs=6", *common)
    assert third.returncode == 0, third.stderr
    assert [m["epoch"] for m in metrics_of(third.stdout)] == [6]
    assert metrics_of(third.stdout)[0]["accuracy"] == pytest.approx(saved["accuracy"])


def test_script_checkpoints_and_exits_zero_on_sigterm(tmp_path):
    checkpoints = tmp_path / "3" / "checkpoints"
    log = tmp_path / "std.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--epochs=500", "--epoch_seconds=0.1",
             f"--st_checkpoint_dir={checkpoints}"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while len(metrics_of(log.read_text())) < 2:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "no metrics within 30 s"
                time.sleep(0.05)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, proc.stderr.read()
            assert time.monotonic() - sent < 2.0, "slow to stop"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    last = metrics_of(text)[-1]["epoch"]
    assert f"SIGTERM received, stopped after epoch {last}" in text
    assert load_checkpoint(checkpoints)["epoch"] == last


@pytest.mark.slow
def test_script_pause_and_resume_through_the_backend(tmp_path):
    from syne_tune_localx import LocalXBackend

    backend = LocalXBackend(entry_point=str(SCRIPT), stop_grace_period=5)
    backend.set_path(str(tmp_path / "experiment"))
    config = {"epochs": 12, "alpha": 1e-4, "eta0": 0.01, "learning_rate": "optimal",
              "loss": "hinge", "shuffle": False, "epoch_seconds": 0.1}
    stdout = tmp_path / "experiment" / "0" / "std.out"

    def wait_for(condition, what, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    try:
        trial = backend.start_trial(config=config)
        assert trial.trial_id == 0
        wait_for(lambda: stdout.exists() and len(metrics_of(stdout.read_text())) >= 3, "3 epochs")
        backend.pause_trial(trial_id=0)
        wait_for(lambda: not backend.busy_trial_ids(), "the pause")
        before = metrics_of(stdout.read_text())
        paused_at = before[-1]["epoch"]
        assert paused_at < 12
        assert load_checkpoint(backend.checkpoint_trial_path(0))["epoch"] == paused_at

        backend.resume_trial(trial_id=0)
        wait_for(lambda: not backend.busy_trial_ids(), "the end of the resumed trial")
        statuses, _ = backend.fetch_status_results([0])
        assert statuses[0][1] == "Completed"
    finally:
        backend.stop_all()

    text = stdout.read_text()  # kept across the pause, appended to
    assert f"SIGTERM received, stopped after epoch {paused_at}" in text
    assert resumed_from(text) == [(paused_at, "0")]
    assert [m["epoch"] for m in metrics_of(text)] == list(range(1, 13))
    assert load_checkpoint(backend.checkpoint_trial_path(0))["epoch"] == 12


# ---------------------------------------------------------------------------
# the launchers
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_launch_digits_asha(tmp_path):
    best = run_launcher(
        tmp_path, str(EXAMPLES / "launch_digits_asha.py"),
        "--max-wallclock-time", "18", "--max-epochs", "15",
    )
    trials = check_results(best, tmp_path, min_trials=4)
    assert "best accuracy" in best["output"]
    epochs_run = {
        t: len(metrics_of((folder / "std.out").read_text())) for t, folder in trials.items()
    }
    assert any(0 < n < 15 for n in epochs_run.values()), f"ASHA stopped no trial early: {epochs_run}"
    assert max(epochs_run.values()) == 15, epochs_run


@pytest.mark.slow
def test_launch_pbt_continues_from_copied_checkpoints(tmp_path):
    best = run_launcher(
        tmp_path, str(EXAMPLES / "launch_pbt.py"), "--max-wallclock-time", "28",
    )
    trials = check_results(best, tmp_path, min_trials=4)
    copies = 0
    for trial_id, folder in trials.items():
        text = (folder / "std.out").read_text()
        origins = resumed_from(text)
        if not origins:
            continue
        # a new trial started from another trial's checkpoint, once
        (epoch, source), = origins
        assert int(source) != trial_id and int(source) < trial_id
        copies += 1
        reported = metrics_of(text)
        if not reported:  # stopped by the end of the experiment before its first epoch
            assert f"SIGTERM received, stopped after epoch {epoch}" in text, text
        else:
            # it continued where the copied checkpoint stood (or had nothing left)
            assert reported[0]["epoch"] in (epoch + 1, epoch), (trial_id, epoch, reported[0])
        checkpoint = folder / "checkpoints"
        if (checkpoint / "checkpoint.pkl").exists():
            history = load_checkpoint(checkpoint)["history"]
            trained_by = {h["trial"] for h in history}
            assert source in trained_by, (trial_id, source, trained_by)
            assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert copies >= 1, "PBT never started a trial from a copied checkpoint"
    assert "resumed from epoch" in best["output"]  # the launcher's summary


@pytest.mark.slow
def test_launch_from_config_selects_the_backend_by_name(tmp_path):
    best = run_launcher(
        tmp_path, str(EXAMPLES / "launch_from_config.py"), str(EXAMPLES / "digits_asha.yaml"),
        "--max-wallclock-time", "14",
    )
    assert best["backend"].startswith("localx"), best["backend"]
    check_results(best, tmp_path, min_trials=3)
    assert Path(best["results_folder"]).name.startswith("digits-asha-yaml")
